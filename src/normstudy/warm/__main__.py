import sys

from normstudy.warm.client import main

sys.exit(main())

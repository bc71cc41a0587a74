"""The subcommands of ``normstudy``: each module adds its commands' arguments and runs them
(:mod:`normstudy.cli` assembles them)."""

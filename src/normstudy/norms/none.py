"""``none``: no normalizer; the layer keeps its own bias (see ``NormFactory``)."""

from normstudy.norms.registry import NORM_CLASSES

NORM_CLASSES.add("none", None)

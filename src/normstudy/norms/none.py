"""``none``: no normalizer; the layer keeps its own bias (see ``NormFactory``)."""

from normstudy.norms.registry import NORMALIZERS

NORMALIZERS.add("none", None)

"""normstudy: a factorial study of normalization layers in deep networks."""

__version__ = "0.1.0"

"""Models: one registry, one module per family (mlp, resnet, wrn, vgg, lstm).

Adding a model is one catalog entry (:data:`normstudy.catalog.MODELS`: defaults, options,
inputs) plus one new module whose builder carries ``@register_model(name)``, imported
here.
"""

from normstudy.models import lstm, mlp, resnet, vgg, wrn  # noqa: F401  (registers the models)
from normstudy.models.common import count_normalizers, depth_layers
from normstudy.models.init import GAMMA_INITS, initialize
from normstudy.models.registry import BUILDERS, ModelSpec, build_model, register_model

__all__ = [
    "GAMMA_INITS",
    "BUILDERS",
    "ModelSpec",
    "build_model",
    "count_normalizers",
    "depth_layers",
    "initialize",
    "register_model",
]

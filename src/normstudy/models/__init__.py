"""Models: one registry, one module per family (mlp, resnet, wrn, vgg, lstm).

Adding a model is one new module whose builder carries ``@register_model(...)`` plus its
name in the import of the model modules.
"""

from normstudy.models import lstm, mlp, resnet, vgg, wrn  # noqa: F401  (registers the models)
from normstudy.models.common import count_normalizers, depth_layers
from normstudy.models.init import GAMMA_INITS, initialize
from normstudy.models.registry import (
    MODELS,
    ModelSpec,
    build_model,
    model_options,
    register_model,
)

__all__ = [
    "GAMMA_INITS",
    "MODELS",
    "ModelSpec",
    "build_model",
    "count_normalizers",
    "depth_layers",
    "initialize",
    "model_options",
    "register_model",
]

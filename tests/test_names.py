"""The torch-free name lists used at parse time equal the registries and model rules."""

import subprocess
import sys

import pytest

from normstudy import names
from normstudy.data import DATASETS
from normstudy.freeze import FREEZE_POLICIES, ROLES
from normstudy.models import MODELS, build_model
from normstudy.norm_options import NORM_OPTIONS, OPTION_CHECKS
from normstudy.norms import NORMALIZERS, make_norm_factory


def test_name_lists_equal_registries():
    assert sorted(names.DATASETS) == DATASETS.names()
    assert sorted(names.MODELS) == MODELS.names()
    assert sorted(names.NORMALIZERS) == NORMALIZERS.names()
    assert sorted(names.FREEZE_POLICIES) == FREEZE_POLICIES.names()
    assert names.PARAMETER_ROLES == ROLES


def test_norm_option_names_match_classes():
    assert sorted(NORM_OPTIONS) == NORMALIZERS.names()
    for name, options in NORM_OPTIONS.items():
        cls = NORMALIZERS.get(name)
        assert set(options) == set(cls.options if cls is not None else ()), name
        assert set(options) <= set(OPTION_CHECKS), name


def test_normalizer_kinds_match_classes():
    for name, kinds in names.NORMALIZERS.items():
        cls = NORMALIZERS.get(name)
        if cls is not None:
            assert set(kinds) == set(cls.supports), name


@pytest.mark.parametrize("model", ["resnet", "wrn", "vgg", "mlp"])
def test_depth_rules_agree_with_builders(model):
    shape = (3, 32, 32) if model != "mlp" else (10,)
    for depth in range(1, 40):
        expected_ok = names.depth_error(model, depth) is None
        try:
            build_model(
                model,
                input_shape=shape,
                num_classes=2,
                norm=make_norm_factory("none"),
                depth=depth,
                width=0.25 if model in ("resnet", "vgg") else (1 if model == "wrn" else 4),
            )
            built = True
        except ValueError:
            built = False
        assert built == expected_ok, (model, depth)


def test_parse_time_modules_do_not_import_torch():
    code = (
        "import sys, normstudy.grid, normstudy.config, normstudy.names, normstudy.behaviour, "
        "normstudy.orphans; "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_aggregation_does_not_import_torch():
    """The tables rule reads thousands of cells; importing torch would add seconds and ~500 MB."""
    code = "import sys, normstudy.tables; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_option_lists_equal_the_builders():
    """The torch-free option tables the planner checks equal the loaders, models and probes."""
    import inspect

    from normstudy.data.registry import dataset_options
    from normstudy.models.registry import model_options
    from normstudy.probes.registry import PROBES, probe_options

    for name in DATASETS.names():
        parameters = inspect.signature(DATASETS.get(name)).parameters
        annotated = {option: str(parameters[option].annotation) for option in dataset_options(name)}
        assert names.DATASET_OPTIONS[name] == annotated, name
    assert {name: set(names.MODEL_OPTIONS[name]) for name in MODELS.names()} == {
        name: set(model_options(name)) for name in MODELS.names()
    }
    assert {name: set(names.PROBE_OPTIONS[name]) for name in PROBES.names()} == {
        name: set(probe_options(name)) for name in PROBES.names()
    }


def test_text_datasets_take_only_text_models_and_text_models_only_text():
    assert names.compatibility_error("synthetic_sentiment", "lstm_text", "batch") is None
    assert names.compatibility_error("sentiment140", "lstm_text", "layer") is None
    for model in ("mlp", "lstm", "resnet"):
        message = names.compatibility_error("sentiment140", model, "batch")
        assert "token ids" in message and "text models: lstm_text" in message
    for dataset in ("digits", "gaussian_noise"):
        message = names.compatibility_error(dataset, "lstm_text", "batch")
        assert "text datasets: sentiment140, synthetic_sentiment" in message
    assert "synthetic_sentiment" in names.EMBEDDED_DATASETS


def test_probes_needing_float_inputs_are_refused_on_text():
    assert (
        names.token_probe_errors("synthetic_sentiment", ["norm_params", {"name": "hessian"}]) == []
    )
    errors = names.token_probe_errors("sentiment140", ["norms", {"name": "propagation"}])
    assert len(errors) == 2 and "needs float inputs" in errors[0]
    assert names.token_probe_errors("digits", ["norms"]) == []


def test_normalizers_without_gamma_beta_match_classes():
    without = {
        name
        for name in NORMALIZERS.names()
        if NORMALIZERS.get(name) is None or not NORMALIZERS.get(name).has_affine
    }
    assert set(names.WITHOUT_GAMMA_BETA) == without


def test_init_from_values_equal_the_registry():
    from normstudy.models.equivalent import INITIALIZATIONS

    assert sorted(names.INIT_FROM) == INITIALIZATIONS.names()
    for models in names.INIT_FROM.values():
        assert set(models) <= set(names.MODELS)

"""The catalogs: every entry has its builder, their facts hold for the built objects, and
one options mechanism checks every family the same way while planning and building."""

import math
import subprocess
import sys

import pytest

from normstudy.catalog import (
    DATASETS,
    FREEZE_POLICIES,
    INIT_FROM,
    MODELS,
    NORMALIZERS,
    PARAMETER_ROLES,
    PROBES,
    Catalog,
    Entry,
    Option,
    UnknownNameError,
    option_problems,
    resolve_options,
)
from normstudy.catalog.cell_rules import cell_problems, token_probe_problems
from normstudy.catalog.models import compatibility_error
from normstudy.catalog.options import at_least, choice, positive
from normstudy.config import resolve_cell_config
from normstudy.data import LOADERS, load_dataset
from normstudy.data.torchvision_sets import SOURCES, stand_in_splits
from normstudy.freeze import ROLES
from normstudy.models import BUILDERS, build_model
from normstudy.models.equivalent import INITIALIZATIONS
from normstudy.norms import NORM_CLASSES, build_norm, make_norm_factory
from normstudy.probes import PROBE_CLASSES, build_probe
from normstudy.registry import Registry


@pytest.mark.parametrize(
    "registry", [LOADERS, BUILDERS, NORM_CLASSES, PROBE_CLASSES, INITIALIZATIONS]
)
def test_every_catalog_entry_has_its_builder(registry):
    assert registry.unbuilt() == []
    assert registry.names() == sorted(registry.catalog)


def test_a_builder_without_a_catalog_entry_fails_naming_the_catalog():
    registry = Registry(NORMALIZERS)
    with pytest.raises(ValueError, match="'fancy' has a builder but no catalog entry"):
        registry.register("fancy")
    with pytest.raises(UnknownNameError, match="unknown normalizer 'fancy'; valid normalizers: "):
        NORMALIZERS["fancy"]


def test_roles_of_the_freeze_module_are_the_catalogs_in_table_order():
    assert ROLES == ("norm_gamma", "norm_beta", "weight", "bias", "head", "random_subset")
    assert tuple(PARAMETER_ROLES) == ROLES
    for policy in FREEZE_POLICIES:
        assert FREEZE_POLICIES[policy].trains <= set(ROLES), policy


@pytest.mark.parametrize("model", ["resnet", "wrn", "vgg", "mlp"])
def test_depth_rules_agree_with_builders(model):
    shape = (3, 32, 32) if model != "mlp" else (10,)
    for depth in range(1, 40):
        expected_ok = MODELS[model].depth_error(depth) is None
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


EMBEDDED = ["digits", "mnist5k", "gaussian_noise", "synthetic_sentiment"]


@pytest.mark.parametrize("name", EMBEDDED + sorted(SOURCES))
def test_dataset_facts_hold_for_the_loaded_data(name):
    """Shapes, classes and training-set sizes (which size every job before its data is
    loaded) are those of the data at the default options and validation split."""
    entry = DATASETS[name]
    if name in SOURCES:
        splits = stand_in_splits(name, val_size=0.1, split_seed=0)
    else:
        splits = load_dataset(name, val_size=0.1, split_seed=0)
    assert tuple(splits.input_shape) == entry.input_shape
    assert splits.num_classes == entry.classes
    assert len(splits.train_y) == entry.train_examples
    assert entry.embedded == (name in EMBEDDED)


def test_text_entries_read_and_are_read_by_text_only():
    assert compatibility_error("synthetic_sentiment", "lstm_text", "batch") is None
    assert compatibility_error("sentiment140", "lstm_text", "layer") is None
    for model in ("mlp", "lstm", "resnet"):
        message = compatibility_error("sentiment140", model, "batch")
        assert "token ids" in message and "text models: lstm_text" in message
    for dataset in ("digits", "gaussian_noise"):
        message = compatibility_error(dataset, "lstm_text", "batch")
        assert "text datasets: sentiment140, synthetic_sentiment" in message
    message = compatibility_error("gaussian_noise", "resnet", "batch")
    assert "needs image inputs" in message and "models that read it: mlp" in message


def test_probes_needing_float_inputs_are_refused_on_text():
    assert token_probe_problems("synthetic_sentiment", ["norm_params", {"name": "hessian"}]) == []
    errors = token_probe_problems("sentiment140", ["norms", {"name": "propagation"}])
    assert len(errors) == 2 and "needs float inputs" in errors[0]
    assert token_probe_problems("digits", ["norms"]) == []


@pytest.mark.parametrize("name", NORMALIZERS.names())
def test_normalizer_classes_take_kinds_and_gamma_beta_from_the_catalog(name):
    entry = NORMALIZERS[name]
    for kind in ("conv", "dense"):
        if kind not in entry.layers:
            with pytest.raises(ValueError, match=f"cannot normalise {kind} layers"):
                build_norm(name, 16, kind)
            continue
        module = build_norm(name, 16, kind)
        if module is None:
            assert not entry.affine
        else:
            assert module.has_affine == entry.affine
            assert (module.weight is not None) == entry.affine


def test_options_resolve_to_checked_defaults_and_conversions():
    assert NORMALIZERS["lp"].resolve("normalizer", {"p": "inf", "eps": 1}) == {
        "eps": 1.0,
        "momentum": 0.1,
        "p": math.inf,
        "centered": True,
    }
    settings = PROBES["smoothness"].resolve("probe", {"step_factors": [1, 2]})
    assert settings == {"batch_size": None, "step_factors": (1.0, 2.0)}
    assert build_probe("smoothness", step_factors=[1, 2]).settings == settings


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (True, "must be a number"),
        ("x", "must be a number"),
        (-1, "must be a finite number >= 0.0"),
    ],
)
def test_option_problems_name_the_option_the_value_and_the_default(value, problem):
    options = {"noise": Option(0.25, "float", at_least(0.0))}
    problems = option_problems("probe", "p", {"noise": value}, options)
    assert problems == [f"probe 'p' option 'noise' = {value!r} {problem} (default 0.25)"]
    with pytest.raises(ValueError, match="option 'noise'"):
        resolve_options("probe", "p", {"noise": value}, options)


def test_unknown_options_and_non_mappings_list_what_is_valid():
    options = {"mode": Option("train", "str", choice("train", "eval"))}
    assert option_problems("probe", "p", {"modes": 1, "x": 2}, options) == [
        "probe 'p' has no option(s) modes, x; valid options: mode"
    ]
    assert option_problems("model", "mlp", [1], {}) == [
        "model 'mlp': its options must be a mapping; got [1]"
    ]
    assert option_problems("probe", "p", {"mode": None}, options) == [
        "probe 'p' option 'mode' = None must be a string (default 'train')"
    ]
    nullable = {"batch_size": Option(None, "int | None", positive)}
    assert resolve_options("probe", "p", {"batch_size": None}, nullable) == {"batch_size": None}
    assert option_problems("probe", "p", {"batch_size": 0}, nullable) == [
        "probe 'p' option 'batch_size' = 0 must be positive and finite (default None)"
    ]


@pytest.mark.parametrize(
    ("key", "options", "family_error"),
    [
        ("norm_options", {"momentum": 2}, "normalizer 'batch' option 'momentum' = 2"),
        ("model_options", {"embedding_dim": 0}, "model 'lstm_text' option 'embedding_dim'"),
        ("dataset_options", {"n": "many"}, "dataset 'synthetic_sentiment' option 'n'"),
        ("probes", [{"name": "hessian", "options": {"mode": "test"}}], "probes[0]: probe"),
    ],
)
def test_planning_refuses_what_the_builders_would_refuse(key, options, family_error):
    """The same check runs while planning (before any job starts) and when building."""
    config = resolve_cell_config(
        {
            "dataset": "synthetic_sentiment",
            "model": "lstm_text",
            "norm": "batch",
            "freeze": "all",
            key: options,
        }
    )
    problems = cell_problems(config)
    assert len(problems) == 1 and family_error in problems[0], problems
    with pytest.raises(ValueError, match="option"):
        if key == "norm_options":
            make_norm_factory("batch", **options)
        elif key == "model_options":
            build_model(
                "lstm_text",
                input_shape=(5,),
                num_classes=2,
                norm=make_norm_factory("batch"),
                vocab_size=10,
                **options,
            )
        elif key == "dataset_options":
            load_dataset("synthetic_sentiment", **options)
        else:
            build_probe("hessian", **options[0]["options"])


def test_the_moved_train_size_option_points_to_train_subset():
    config = resolve_cell_config({"dataset": "digits", "dataset_options": {"train_size": 100}})
    problems = cell_problems(config)
    assert any("set train_subset: instead" in problem for problem in problems), problems


def test_unknown_names_in_a_cell_list_the_valid_ones():
    config = resolve_cell_config({"norm": "batchnorm", "freeze": "gamma_beta"})
    problems = cell_problems(config)
    assert problems == [
        f"norm 'batchnorm' is unknown; valid: {', '.join(sorted(NORMALIZERS))}",
        f"freeze 'gamma_beta' is unknown; valid: {', '.join(sorted(FREEZE_POLICIES))}",
    ]


def test_init_from_entries_name_existing_models():
    for name in INIT_FROM:
        assert set(INIT_FROM[name].models) <= set(MODELS)


def test_a_catalog_refuses_a_name_twice_and_keeps_declared_order():
    with pytest.raises(ValueError, match="'a' is in the catalog twice"):
        Catalog("thing", [Entry("a", "A"), Entry("a", "A again")])
    catalog = Catalog("thing", [Entry("b", "B"), Entry("a", "A")])
    assert catalog.names() == ["b", "a"] and catalog.get("c") is None


def test_parse_time_modules_do_not_import_torch():
    code = (
        "import sys, normstudy.grid, normstudy.config, normstudy.catalog, normstudy.behaviour, "
        "normstudy.orphans, normstudy.catalog.cell_rules; "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_aggregation_does_not_import_torch():
    """The tables rule reads thousands of cells; importing torch would add seconds and ~500 MB."""
    code = "import sys, normstudy.tables; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr

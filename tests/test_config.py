"""The cell config: defaults, schema validation and the messages a user sees."""

import pytest

from normstudy.config import DEFAULTS, ConfigError, canonical_json, resolve_cell_config


def test_defaults_resolve_and_are_frankle_schedule():
    config = resolve_cell_config({})
    assert config == DEFAULTS
    assert config["momentum"] == 0.9 and config["lr"] == 0.1 and config["batch_size"] == 128
    assert config["milestones"] == [0.5, 0.75] and config["lr_decay"] == 0.1
    assert config["weight_decay"] == 1e-4 and config["weight_decay_norm"] is True
    assert config["gamma_init"] == "uniform"


def test_overrides_replace_defaults_without_touching_them():
    config = resolve_cell_config({"lr": 0.5, "milestones": [0.3]})
    assert config["lr"] == 0.5 and config["milestones"] == [0.3]
    assert DEFAULTS["lr"] == 0.1 and DEFAULTS["milestones"] == [0.5, 0.75]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"lrr": 0.1}, "unknown config key(s) 'lrr' (did you mean 'lr'?)"),
        ({"lr": -0.1}, "'lr' = -0.1"),
        ({"lr": "fast"}, "'lr' = 'fast'"),
        ({"batch_size": 0}, "'batch_size' = 0"),
        ({"batch_size": 1.5}, "'batch_size' = 1.5"),
        ({"optimizer": "rmsprop"}, "['sgd', 'adam']"),
        ({"schedule": "step"}, "['multistep', 'cosine', 'constant']"),
        ({"gamma_init": "normal"}, "['ones', 'uniform']"),
        ({"milestones": [0.75, 0.5]}, "must be increasing"),
        ({"milestones": [1.5]}, "'milestones.0' = 1.5"),
        ({"dataset": "../etc"}, "may only contain"),
        ({"norm": "batch; rm -rf /"}, "may only contain"),
        ({"momentum": 1.0}, "'momentum' = 1.0"),
    ],
)
def test_bad_values_name_the_key_and_valid_values(overrides, expected):
    with pytest.raises(ConfigError) as info:
        resolve_cell_config(overrides)
    assert expected in str(info.value)


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match="valid keys: .*batch_size"):
        resolve_cell_config({"nonsense": 1})


def test_canonical_json_is_order_independent():
    assert canonical_json({"a": 1, "b": [1, 2]}) == canonical_json({"b": [1, 2], "a": 1})

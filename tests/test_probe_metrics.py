"""Cell metrics read from probe records (Morwani 2020 §4: distance from init, top eigenvalue)."""

from __future__ import annotations

import math

import pyarrow as pa

from normstudy.probe_metrics import PROBE_METRICS, probe_metrics
from normstudy.schemas import PROBE_RECORDS_SCHEMA


def records(rows):
    keys = ("epoch", "step", "probe", "layer", "layer_index", "key", "value")
    return pa.Table.from_pylist(
        [dict(zip(keys, r, strict=True)) for r in rows], schema=PROBE_RECORDS_SCHEMA
    )


def test_the_whole_model_value_at_the_last_step_is_taken():
    table = records(
        [
            (0, 0, "norms", "model", -1, "distance_from_init", 0.0),
            (5, 50, "norms", "model", -1, "distance_from_init", 2.5),
            (5, 50, "norms", "fc1", 0, "distance_from_init", 9.0),  # a layer, not the model
            (2, 20, "norms", "model", -1, "distance_from_init", 1.0),
            (0, 0, "hessian", "model", -1, "lambda_1", 30.0),
            (5, 50, "hessian", "model", -1, "lambda_1", 12.0),
            (5, 50, "hessian", "model", -1, "lambda_2", 11.0),
        ]
    )
    assert probe_metrics(table) == {
        "final_distance_from_init": 2.5,
        "final_hessian_top_eigenvalue": 12.0,
    }


def test_a_cell_without_the_probe_has_null_and_a_null_value_is_nan():
    assert probe_metrics(None) == dict.fromkeys(PROBE_METRICS)
    table = records([(1, 10, "norms", "model", -1, "distance_from_init", None)])
    metrics = probe_metrics(table)
    assert math.isnan(metrics["final_distance_from_init"])
    assert metrics["final_hessian_top_eigenvalue"] is None

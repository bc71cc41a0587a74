"""Explicit pyarrow schemas of every table the study writes (docs/design.md, "Contracts")."""

from __future__ import annotations

import pyarrow as pa

CURVES_SCHEMA = pa.schema(
    [
        pa.field("epoch", pa.int32(), nullable=False),
        pa.field("step", pa.int64(), nullable=False),
        pa.field("lr", pa.float64()),
        pa.field("train_loss", pa.float64()),
        pa.field("train_acc", pa.float64()),
        pa.field("val_loss", pa.float64()),
        pa.field("val_acc", pa.float64()),
        pa.field("test_loss", pa.float64()),
        pa.field("test_acc", pa.float64()),
        pa.field("seconds", pa.float64()),
    ],
    metadata={
        "description": "one row per epoch of one cell; train_* are running means over the "
        "epoch's training batches in train mode, val_*/test_* are measured in eval mode at "
        "the end of the epoch; accuracies are fractions in [0, 1]; seconds is the epoch's "
        "wall time including evaluation"
    },
)


def table_from_rows(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """``rows`` (dicts holding every field of ``schema``) as a table with that schema."""
    columns = {field.name: [row[field.name] for row in rows] for field in schema}
    return pa.table(columns, schema=schema)


def curves_table(rows: list[dict]) -> pa.Table:
    """The per-epoch curves of one cell as a table with :data:`CURVES_SCHEMA`."""
    return table_from_rows(rows, CURVES_SCHEMA)


PROBE_RECORDS_SCHEMA = pa.schema(
    [
        pa.field("epoch", pa.int32(), nullable=False),
        pa.field("step", pa.int64(), nullable=False),
        pa.field("probe", pa.string(), nullable=False),
        pa.field("layer", pa.string(), nullable=False),
        pa.field("layer_index", pa.int32(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("value", pa.float64()),
    ],
    metadata={
        "description": "long-format probe records of one cell: epoch is the number of "
        "completed epochs when the probe ran (0 = at init), step the number of optimizer "
        "steps; layer is the qualified module name of a normalised layer (its position "
        "along depth in layer_index, from 0) or 'model' with layer_index -1 for whole-model "
        "values; key names the quantity (e.g. 'lambda_1', 'grad_abs_mean/norm_gamma')"
    },
)


def probe_records_table(rows: list[dict]) -> pa.Table:
    """Probe records of one cell as a table with :data:`PROBE_RECORDS_SCHEMA`."""
    return table_from_rows(rows, PROBE_RECORDS_SCHEMA)

"""Explicit pyarrow schemas of every table the study writes (DESIGN.md, "Tables")."""

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


def curves_table(rows: list[dict]) -> pa.Table:
    """The per-epoch curves of one cell as a table with :data:`CURVES_SCHEMA`."""
    columns = {field.name: [row[field.name] for row in rows] for field in CURVES_SCHEMA}
    return pa.table(columns, schema=CURVES_SCHEMA)

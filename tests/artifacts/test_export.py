"""Whole-run exports in long format."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from flowtime.artifacts.export import export_run, to_csv, to_ndjson, to_parquet
from flowtime.artifacts.registry import Registry
from flowtime.artifacts.writer import write_run
from flowtime.engine import evaluate
from flowtime.model.load import load_model

SERIES = [("a", np.array([1.0, 0.5, math.nan])), ("b", np.array([1e-05, math.inf, -0.0]))]


def test_csv_rows_use_canonical_numbers() -> None:
    text = b"".join(to_csv(SERIES, 15)).decode()
    assert text.splitlines() == [
        "time_bin,offset_minutes,series,value",
        "0,0,a,1", "1,15,a,0.5", "2,30,a,NaN",
        "0,0,b,1E-05", "1,15,b,Infinity", "2,30,b,-0",
    ]


def test_ndjson_rows_are_json_with_null_for_non_finite() -> None:
    rows = [json.loads(line) for line in b"".join(to_ndjson(SERIES, 60)).splitlines()]
    assert rows[2] == {"time_bin": 2, "offset_minutes": 120, "series": "a", "value": None}
    assert rows[3]["value"] == 1e-05
    assert rows[4]["value"] is None
    assert len(rows) == 6


def test_parquet_has_typed_columns() -> None:
    table = pq.read_table(io.BytesIO(to_parquet(SERIES, 1440)))
    assert table.column_names == ["time_bin", "offset_minutes", "series", "value"]
    rows = table.to_pylist()
    assert rows[1] == {"time_bin": 1, "offset_minutes": 1440, "series": "a", "value": 0.5}
    assert math.isnan(rows[2]["value"]) and rows[4]["value"] == math.inf
    assert str(table.schema.field("time_bin").type) == "int64"
    assert pq.read_table(io.BytesIO(to_parquet([], 1))).num_rows == 0


def test_export_run_reads_the_stored_series(tmp_path: Path) -> None:
    root = tmp_path
    loaded = load_model("schemaVersion: 1\ngrid: {bins: 2, binSize: 2, binUnit: hours}\n"
                        "nodes: [{id: x, values: [3, 4]}]\n")
    run_id = write_run(loaded, evaluate(loaded.model), root).run_id
    out = export_run(Registry(root), run_id, "csv")
    assert out.filename == f"{run_id}.csv"
    assert out.media_type.startswith("text/csv")
    assert b"".join(out.chunks).decode().splitlines()[1:] == ["0,0,x,3", "1,120,x,4"]
    with pytest.raises(ValueError, match="unsupported export format"):
        export_run(Registry(root), run_id, "xml")

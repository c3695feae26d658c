"""
A whole run as one file, in long format: one row per series and bin.

    time_bin        the bin index, 0..bins-1
    offset_minutes  the bin's start, in minutes from the grid start
    series          the node id
    value           the value (CSV: canonical number text; NDJSON: null for NaN/inf)

Series come in the run's index order. CSV and NDJSON are produced as a stream
of chunks (one per series); Parquet (via pyarrow) as one buffer.

>>> b"".join(to_csv([("a", np.array([1.0, 0.5]))], 60)).decode()
'time_bin,offset_minutes,series,value\\n0,0,a,1\\n1,60,a,0.5\\n'
>>> b"".join(to_ndjson([("a", np.array([2.0, np.nan]))], 1)).decode().splitlines()[1]
'{"time_bin":1,"offset_minutes":1,"series":"a","value":null}'
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from flowtime.artifacts.canonical import series_csv
from flowtime.records import record

if TYPE_CHECKING:
    from flowtime.artifacts.registry import Registry

Series = npt.NDArray[np.float64]
NamedSeries = Sequence[tuple[str, Series]]
COLUMNS = ("time_bin", "offset_minutes", "series", "value")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
FORMATS = tuple(MEDIA_TYPES)


def value_texts(values: Series) -> list[str]:
    """
    Each value in the canonical number text of the run's CSV files.

    >>> value_texts(np.array([8.0, 0.1 + 0.2, 1e-05, -np.inf]))
    ['8', '0.30000000000000004', '1E-05', '-Infinity']
    """
    lines = series_csv(values).decode().split("\n")[1:-1]
    return [line.partition(",")[2] for line in lines]


def to_csv(series: NamedSeries, bin_minutes: int) -> Iterator[bytes]:
    yield (",".join(COLUMNS) + "\n").encode()
    for name, values in series:
        texts = value_texts(values)
        rows = [f"{t},{t * bin_minutes},{name},{v}\n" for t, v in enumerate(texts)]
        yield "".join(rows).encode()


def to_ndjson(series: NamedSeries, bin_minutes: int) -> Iterator[bytes]:
    for name, values in series:
        texts = value_texts(values)
        finite = np.isfinite(values)
        quoted = json.dumps(name)
        rows = [
            f'{{"time_bin":{t},"offset_minutes":{t * bin_minutes},"series":{quoted},'
            f'"value":{v if finite[t] else "null"}}}\n'
            for t, v in enumerate(texts)
        ]
        yield "".join(rows).encode()


def to_parquet(series: NamedSeries, bin_minutes: int) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = [len(v) for _, v in series]
    bins = np.concatenate([np.arange(k, dtype=np.int64) for k in n]) if n else np.zeros(0, np.int64)
    values = (np.concatenate([np.asarray(v, dtype=np.float64) for _, v in series]) if n
              else np.zeros(0, np.float64))
    names = pa.DictionaryArray.from_arrays(
        pa.array(np.repeat(np.arange(len(series), dtype=np.int32), n)),
        pa.array([name for name, _ in series], type=pa.string()),
    )
    table = pa.Table.from_arrays(
        [pa.array(bins), pa.array(bins * bin_minutes), names, pa.array(values)],
        names=list(COLUMNS),
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


@record
class Export:
    """An export ready to send: its media type, a file name, and the bytes as chunks."""

    media_type: str
    filename: str
    chunks: Iterator[bytes]


def export_run(registry: Registry, run_id: str, fmt: str) -> Export:
    """Read every stored series of ``run_id`` and encode it as ``fmt`` (csv, ndjson, parquet)."""
    if fmt not in MEDIA_TYPES:
        raise ValueError(f"unsupported export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    grid = registry.run_json(run_id).get("grid") or {}
    bin_minutes = int(grid.get("binMinutes") or 0) or _bin_minutes(grid)
    series = list(registry.all_series(run_id).items())
    filename = f"{run_id}.{fmt}"
    if fmt == "parquet":
        return Export(MEDIA_TYPES[fmt], filename, iter([to_parquet(series, bin_minutes)]))
    encode = to_csv if fmt == "csv" else to_ndjson
    return Export(MEDIA_TYPES[fmt], filename, encode(series, bin_minutes))


def _bin_minutes(grid: dict[str, object]) -> int:
    units = {"minutes": 1, "hours": 60, "days": 1440, "weeks": 10080}
    unit = units.get(str(grid.get("binUnit")), 1)
    size = grid.get("binSize")
    return (size if isinstance(size, int) else 1) * unit

"""
Reading ``file:`` series for the loader: the file edge of ``model.files``.

``beside(model_path)`` resolves a reference against the model file's folder,
with no other bound (the CLI reads the user's own files). ``within(root)``
resolves against a telemetry root and refuses a path that ends up outside it
(``..``, a symlink, an absolute path elsewhere): the Engine's HTTP routes use
it when ``FLOWTIME_TELEMETRY_ROOT`` is set, and read no file otherwise.

A reference is the text after ``file:``: ``Name.csv`` or ``dir/Name.csv``
(relative to the base), ``/abs/Name.csv``, ``//dir/Name.csv`` (``file://``,
relative to the base) or ``///abs/Name.csv`` (``file:///``, absolute).

The CSV (``engine-head.md`` §10): the header is exactly ``bin_index,value`` or
``bin_index,classId,value``; each row is an integer bin index in 0..bins-1 and
a number; an index given twice (per class) is an error; missing bins are 0;
an empty cell or ``NaN`` is NaN. With classes the series is the sum of the
classes in each bin. Every error names the file and the line.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

from flowtime.errors import SeriesFileError
from flowtime.model.files import FileSeries, SeriesFiles, stem_of
from flowtime.model.schema import FloatArray

HEADERS = ("bin_index,value", "bin_index,classId,value")
# A series file holds at most a few numbers per bin; this bounds what one reference can make us read.
MAX_FILE_BYTES = 64 * 1024 * 1024


def parse_series_csv(text: str, name: str, bins: int) -> FloatArray:
    """
    The series ``text`` (a CSV read from ``name``) holds, one value per bin.

    >>> parse_series_csv("bin_index,value\\n0,1.5\\n2,\\n", "a.csv", 4).tolist()
    [1.5, 0.0, nan, 0.0]
    """
    lines = text.splitlines()
    header = lines[0].strip().replace(" ", "") if lines else ""
    if header not in HEADERS:
        got = repr(lines[0]) if lines else "an empty file"
        raise SeriesFileError(f"{name} line 1: the header must be exactly `bin_index,value` or "
                              f"`bin_index,classId,value`, got {got}")
    classes = header == HEADERS[1]
    width = 3 if classes else 2
    values = np.zeros(bins, dtype=np.float64)
    seen: dict[tuple[int, str], int] = {}
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != width:
            raise SeriesFileError(f"{name} line {n}: expected {width} cells ({header}), got {len(cells)}")
        try:
            index = int(cells[0])
        except ValueError:
            raise SeriesFileError(f"{name} line {n}: bin_index must be a whole number, got {cells[0]!r}") from None
        if not 0 <= index < bins:
            raise SeriesFileError(f"{name} line {n}: bin_index {index} is outside the grid (0..{bins - 1})")
        class_id = cells[1] if classes else ""
        if (index, class_id) in seen:
            what = f"bin_index {index}" + (f" for class '{class_id}'" if classes else "")
            raise SeriesFileError(f"{name} line {n}: {what} is given twice (first on line {seen[index, class_id]})")
        seen[index, class_id] = n
        cell = cells[-1]
        if cell == "" or cell.lower() == "nan":
            value = math.nan
        else:
            try:
                value = float(cell)
            except ValueError:
                raise SeriesFileError(f"{name} line {n}: value must be a number (or empty / NaN), got "
                                      f"{cell!r}") from None
        values[index] += value
    return values


def _target(ref: str, base: Path) -> Path:
    if ref.startswith("///"):
        return Path(ref[2:])
    if ref.startswith("//"):
        return base / ref[2:]
    path = Path(ref)
    return path if path.is_absolute() else base / path


def _read(path: Path, shown: str, bins: int) -> FileSeries:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise SeriesFileError(f"{shown}: file not found") from None
    except IsADirectoryError:
        raise SeriesFileError(f"{shown}: is a folder, not a CSV file") from None
    except OSError as exc:
        raise SeriesFileError(f"{shown}: cannot read it ({exc.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise SeriesFileError(f"{shown}: larger than {MAX_FILE_BYTES} bytes; is this a series CSV?")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SeriesFileError(f"{shown}: not UTF-8 text (byte {exc.start})") from None
    return FileSeries(parse_series_csv(text, shown, bins), str(path.resolve()))


def beside(model_path: str | os.PathLike[str] | None) -> SeriesFiles:
    """Files relative to the folder of ``model_path`` (the working folder for stdin, ``None`` or ``-``)."""
    base = Path(model_path).parent if model_path is not None and str(model_path) != "-" else Path.cwd()

    def read(ref: str, bins: int) -> FileSeries:
        path = _target(ref, base)
        return _read(path, str(path), bins)

    return read


def within(root: str | os.PathLike[str]) -> SeriesFiles:
    """Files inside ``root`` only: relative references against it; anything that resolves outside is refused."""
    top = Path(root).resolve()

    def read(ref: str, bins: int) -> FileSeries:
        path = _target(ref, top)
        real = path.resolve()  # follows symlinks and `..`: what would really be opened
        if not real.is_relative_to(top):
            raise SeriesFileError(f"`file:{ref}` is outside the telemetry root; only files under the root "
                                  "(FLOWTIME_TELEMETRY_ROOT) are read over HTTP")
        rel = real.relative_to(top).as_posix()
        return _read(real, rel, bins)

    return read


def inline_files(text: str, source: str, files: SeriesFiles) -> str:
    """
    The model ``text`` with every ``file:`` series read now, through ``files``, and written into it as a
    const node (named by the file's stem, as the loader names it) that the reference points at instead.

    What experiments send to their workers (a process pool, a Dask cluster): a self-contained text, so no
    worker needs the client's files or its working folder, and each file is read once, here (decision 0038).
    A text without ``file:`` references comes back unchanged. The model is loaded first, so a missing file or
    a bad CSV is reported at its reference with every other problem. A const node holds finite numbers only:
    a file with empty or NaN values is refused here, naming the file and the bins.
    """
    import yaml

    from flowtime.model.load import load_model
    from flowtime.model.yamltext import parse_yaml

    read: dict[str, FileSeries] = {}

    def once(ref: str, bins: int) -> FileSeries:
        if ref not in read:
            read[ref] = files(ref, bins)
        return read[ref]

    load_model(text, source, series_files=once)  # every problem, located, raised once
    if not read:
        return text
    data = parse_yaml(text, source)[0]
    topology = data.get("topology") or {}
    owners = [item for key in ("nodes", "constraints") for item in topology.get(key) or []
              if isinstance(item, dict)]
    taken = {n.get("id") for n in data.get("nodes") or [] if isinstance(n, dict)}
    by_key: dict[str, str] = {}  # resolved path -> node id
    added: list[dict[str, object]] = []
    for owner in owners:
        semantics = owner.get("semantics")
        if not isinstance(semantics, dict):
            continue
        for field, value in semantics.items():
            if not (isinstance(value, str) and value.strip().startswith("file:")):
                continue
            ref = value.strip()[len("file:"):].strip()
            got = read[ref]
            node_id = by_key.get(got.key)
            if node_id is None:
                bad = [i for i, v in enumerate(got.values.tolist()) if not math.isfinite(v)]
                if bad:
                    shown = ", ".join(str(i) for i in bad[:10]) + (", ..." if len(bad) > 10 else "")
                    many = "s" if len(bad) > 1 else ""
                    raise SeriesFileError(f"{source}: `{value.strip()}` has no number for bin{many} {shown} (empty "
                                          "or NaN); an experiment writes a file's series into the model as a const "
                                          "node, which needs a finite number in every bin")
                node_id = _free_id(stem_of(ref), taken)
                taken.add(node_id)
                by_key[got.key] = node_id
                added.append({"id": node_id, "kind": "const", "values": got.values.tolist()})
            semantics[field] = node_id
    data["nodes"] = [*(data.get("nodes") or []), *added]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _free_id(stem: str, taken: set[object]) -> str:
    """The stem when it is a node id nobody holds (as the loader names a file's node), else ``<stem>_file<k>``."""
    from flowtime.model.load import NODE_ID

    base = stem if NODE_ID.match(stem) else "f_" + re.sub(r"[^\w.\-]", "_", stem)[:100]
    if base == stem and base not in taken:
        return base
    k = 1
    while f"{base}_file{k}" in taken:
        k += 1
    return f"{base}_file{k}"

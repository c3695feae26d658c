r"""
The experiment folder: a finished experiment kept beside the runs (decision 0036).

    <engine data dir>/experiments/<expId>/
      spec.json  model.yaml  provenance.json  result.json  table.csv  table.parquet
      bands.npz (Monte Carlo)  environment.json  experiment.json (written last: "complete")
      runs/<runId>   (empty: a run materialised from one of its points)
    <engine data dir>/experiments/index.sqlite   (the listing's index, rebuilt from the folders)

Written like a run: into a hidden temporary sibling, renamed into place, so a
folder named like an experiment id is always whole - a cancelled or failed
experiment leaves nothing. Ids look like run ids: ``exp_<UTC stamp>_<8 hex>``.
``materialise`` writes point k again as an ordinary run whose run.json names
the experiment and the point.
"""

from __future__ import annotations

import io
import json
import os
import platform
import re
import shutil
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from flowtime._version import __version__
from flowtime.artifacts import layout
from flowtime.artifacts.experiment_index import (
    ExperimentIndex,
    ExperimentPage,
    ExperimentQuery,
    StoredExperiment,
    summary_of,
)
from flowtime.artifacts.index import is_disk_full
from flowtime.artifacts.writer import RunRecord, write_run
from flowtime.engine import plan
from flowtime.errors import ArtifactError, ExperimentNotFound, InvalidExperimentId, StorageFull
from flowtime.experiments.parameters import edited_text, edits_of, resolve, to_sets
from flowtime.experiments.results import ExperimentResult
from flowtime.experiments.spec import parse_spec
from flowtime.model.load import load_model
from flowtime.model.yamltext import parse_yaml

FOLDER = "experiments"
SUMMARY = "experiment.json"
SPEC = "spec.json"
MODEL = "model.yaml"
PROVENANCE = "provenance.json"
RESULT = "result.json"
TABLE_CSV = "table.csv"
TABLE_PARQUET = "table.parquet"
BANDS = "bands.npz"
ENVIRONMENT = "environment.json"
INDEX_FILE = "index.sqlite"
RUNS = "runs"  # one empty file per run materialised from the experiment, named by its id
FILES = (SPEC, MODEL, PROVENANCE, RESULT, TABLE_CSV, TABLE_PARQUET, ENVIRONMENT, SUMMARY)

EXPERIMENT_ID = re.compile(r"^exp_[0-9]{8}T[0-9]{6}Z_[0-9a-f]{8}\Z", re.ASCII)
EXAMPLE_ID = "exp_20250101T000000Z_ab12cd34"


def new_experiment_id(now: datetime | None = None) -> str:
    """
    >>> bool(EXPERIMENT_ID.match(new_experiment_id()))
    True
    """
    now = now or datetime.now(UTC)
    return f"exp_{now.strftime(layout.STAMP)}_{os.urandom(4).hex()}"


def check_experiment_id(exp_id: str) -> str:
    if not EXPERIMENT_ID.match(exp_id):
        raise InvalidExperimentId(f"'{exp_id[:80]}' is not an experiment id; they look like {EXAMPLE_ID}")
    return exp_id


def environment(backend: str) -> dict[str, Any]:
    """What computed the numbers (a result is reproducible on the same versions)."""
    import scipy  # type: ignore[import-untyped]

    return {"flowtime": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "platform": platform.platform(), "backend": backend}


def _dump(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def table_csv(result: ExperimentResult) -> bytes:
    """``point`` then one column per parameter and metric; floats as shortest round-trip text, NaN empty."""
    out = io.StringIO()
    header = ["point", *result.parameters, *result.metric_names]
    out.write(",".join(_csv_cell(h) for h in header) + "\n")
    rows = np.concatenate([result.points, result.metrics], axis=1)
    for k, row in enumerate(rows):
        out.write(",".join([str(k), *(repr(float(v)) if np.isfinite(v) else "" for v in row)]) + "\n")
    return out.getvalue().encode("utf-8")


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


def _parquet(result: ExperimentResult) -> bytes:
    buf = io.BytesIO()
    result.table.to_parquet(buf, engine="pyarrow", index=True)
    return buf.getvalue()


def _bands(result: ExperimentResult) -> bytes | None:
    if not result.bands:
        return None
    buf = io.BytesIO()
    arrays = {name: np.ascontiguousarray(a) for name, a in result.bands.items()}
    arrays["__percentiles__"] = np.asarray(result.percentiles, dtype=np.float64)
    np.savez(buf, allow_pickle=False, **arrays)
    return buf.getvalue()


class ExperimentStore:
    """Finished experiments under ``<engine data dir>/experiments``."""

    def __init__(self, engine_dir: Path) -> None:
        self.root = Path(engine_dir) / FOLDER
        self.index = ExperimentIndex(self.root / INDEX_FILE, self._scan, self._complete)

    def _complete(self, exp_id: str) -> bool:
        folder = self.root / exp_id
        return not folder.is_symlink() and (folder / SUMMARY).is_file()

    def _folders(self) -> dict[str, Path]:
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return {}
        out: dict[str, Path] = {}
        for entry in entries:
            try:
                if EXPERIMENT_ID.match(entry.name) and entry.is_dir(follow_symlinks=False):
                    out[entry.name] = Path(entry.path)
            except OSError:
                continue
        return out

    def _read_summary(self, folder: Path) -> StoredExperiment | None:
        try:
            data = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
            return summary_of(data, lambda: json.loads((folder / SPEC).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # incomplete or damaged: not listed

    def _scan(self) -> list[StoredExperiment]:
        return [s for s in map(self._read_summary, self._folders().values()) if s is not None]

    def check(self) -> None:
        """Start-up: the index checked (a bad one set aside and rebuilt), then caught up with the folders."""
        self.index.check()
        self.sync()

    def sync(self) -> None:
        """Index folders that are not yet (written by an older release, or copied in); drop vanished rows."""
        folders = self._folders()
        indexed = self.index.ids()
        new = [self._read_summary(folders[name]) for name in sorted(folders.keys() - indexed)]
        vanished = indexed - folders.keys()
        if new or vanished:
            self.index.put([s for s in new if s is not None], vanished)

    def rebuild(self) -> int:
        """Every folder read again and the index made to match; returns the count."""
        found = self._scan()
        self.index.replace(found)
        return len(found)

    def query(self, q: ExperimentQuery, live: list[StoredExperiment] | None = None) -> ExperimentPage:
        """A page of stored experiments (and ``live`` ones, kept in memory by a server) matching ``q``."""
        return self.index.query(q, live or [])

    def folder(self, exp_id: str) -> Path:
        return self.root / check_experiment_id(exp_id)

    def write(self, exp_id: str, *, result: ExperimentResult, model_text: str, title: str, model_hash: str,
              created: datetime, backend: str, provenance: dict[str, Any] | None = None,
              grid: dict[str, Any] | None = None) -> StoredExperiment:
        """Write the folder atomically; returns its summary."""
        final = self.folder(exp_id)
        targets = tuple(str(p.get("target")) for p in result.spec.get("parameters", []) if isinstance(p, dict))
        summary = StoredExperiment(exp_id, result.kind, title, result.n, "done", layout.utc_iso(created),
                                   layout.utc_iso(datetime.now(UTC)), model_hash, targets)
        files: dict[str, bytes] = {
            SPEC: _dump(result.spec),
            MODEL: model_text.replace("\r\n", "\n").encode("utf-8"),
            PROVENANCE: _dump({"modelHash": model_hash, "source": provenance or {"kind": "request"},
                               **({"grid": grid} if grid is not None else {})}),
            RESULT: _dump(result.to_json()),
            TABLE_CSV: table_csv(result),
            TABLE_PARQUET: _parquet(result),
            ENVIRONMENT: _dump(environment(backend)),
        }
        bands = _bands(result)
        if bands is not None:
            files[BANDS] = bands
        tmp = self.root / f"{layout.TMP_PREFIX}{exp_id}-{os.urandom(4).hex()}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
            for name, data in files.items():
                (tmp / name).write_bytes(data)
            (tmp / SUMMARY).write_bytes(_dump(summary.to_json()))  # last: a summary means "complete"
            os.rename(tmp, final)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if is_disk_full(exc):
                raise StorageFull(f"the disk holding {self.root} is full: experiment {exp_id} was not stored") \
                    from exc
            raise ArtifactError(f"cannot write experiment {exp_id} under {self.root}: {exc}") from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            self.index.put([summary])
        except BaseException:  # never stored but unlisted: a retry would make a second one
            self._remove(exp_id)
            raise
        return summary

    def listed(self) -> list[StoredExperiment]:
        """Every stored experiment, newest first (from the index)."""
        out: list[StoredExperiment] = []
        while True:
            page = self.query(ExperimentQuery(limit=1000, skip=len(out)))
            out.extend(page.experiments)
            if not page.experiments or len(out) >= page.total:
                return out

    def _read(self, exp_id: str, name: str) -> bytes:
        try:
            return (self.folder(exp_id) / name).read_bytes()
        except FileNotFoundError:
            raise ExperimentNotFound(f"experiment {exp_id} not found") from None

    def summary(self, exp_id: str) -> StoredExperiment:
        return summary_of(json.loads(self._read(exp_id, SUMMARY)), lambda: json.loads(self._read(exp_id, SPEC)))

    def result(self, exp_id: str) -> dict[str, Any]:
        self.summary(exp_id)  # complete, or not found
        data: dict[str, Any] = json.loads(self._read(exp_id, RESULT))
        return data

    def grid(self, exp_id: str) -> dict[str, Any] | None:
        """The model's grid as recorded at the start (None for an experiment stored without it)."""
        kept = json.loads(self._read(exp_id, PROVENANCE)).get("grid")
        return kept if isinstance(kept, dict) else None

    def model_text(self, exp_id: str) -> str:
        return self._read(exp_id, MODEL).decode("utf-8")

    def files(self, exp_id: str) -> list[str]:
        self.summary(exp_id)
        return sorted(p.name for p in self.folder(exp_id).iterdir())

    def delete(self, exp_id: str) -> None:
        folder = self.folder(exp_id)
        if not (folder / SUMMARY).is_file():
            with suppress(ArtifactError):  # a ghost row, if any: its folder went, the row stayed
                self.index.remove([exp_id])
            raise ExperimentNotFound(f"experiment {exp_id} not found")
        if not self._remove(exp_id):
            raise ExperimentNotFound(f"experiment {exp_id} not found")
        try:
            self.index.remove([exp_id])
        except ArtifactError as exc:  # gone from disk; the row is a ghost no listing shows
            _log().warning("experiment %s deleted, but its index row could not be dropped: %s", exp_id, exc)

    def _remove(self, exp_id: str) -> bool:
        # renamed aside first: a reader never sees a half-deleted folder as an experiment
        aside = self.root / f"{layout.TMP_PREFIX}deleted-{exp_id}-{os.urandom(4).hex()}"
        try:
            os.rename(self.root / exp_id, aside)
        except FileNotFoundError:
            return False
        shutil.rmtree(aside, ignore_errors=True)
        return True

    def link_run(self, exp_id: str, run_id: str) -> None:
        """Note that ``run_id`` was materialised from this experiment (an empty file, made at once)."""
        layout.check_run_id(run_id)
        folder = self.folder(exp_id) / RUNS
        folder.mkdir(exist_ok=True)
        (folder / run_id).touch()

    def runs(self, exp_id: str, exists: Callable[[str], bool]) -> list[str]:
        """The runs materialised from this experiment that still ``exist``, sorted by id."""
        try:
            names = os.listdir(self.folder(exp_id) / RUNS)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(n for n in names if layout.is_run_id(n) and exists(n))


def _log() -> Any:
    import logging

    return logging.getLogger("flowtime.experiments")


def materialise(store: ExperimentStore, exp_id: str, point: int, runs_root: Path) -> RunRecord:
    """
    Point ``point`` of a stored experiment written as an ordinary run under ``runs_root``
    (its parameters and seed; a model edit such as a WIP limit is in the run's spec.yaml,
    a const override in its ``overrides``); run.json names the experiment and the point.
    """
    result = store.result(exp_id)
    n = int(result["points"])
    if not 0 <= point < n:
        raise ExperimentNotFound(f"experiment {exp_id} has points 0 to {n - 1}, not {point}")
    text = store.model_text(exp_id)
    spec = parse_spec(result["spec"])
    model = load_model(text, "<experiment model>").model
    data: list[Any] = []

    def yaml_data() -> Any:
        if not data:
            data.append(parse_yaml(text)[0])
        return data[0]

    targets = resolve(model, spec.parameters, yaml_data)
    row = np.asarray([result["table"]["rows"][point][:len(targets)]], dtype=np.float64)
    edits = edits_of(targets, row)[0]
    run_text = edited_text(yaml_data(), targets, edits) if edits else text
    loaded = load_model(run_text, "<experiment model>")
    sample = spec.sample_pmf if spec.sample_pmf is not None else spec.kind == "montecarlo"
    results = plan(loaded.model).evaluate(result["seeds"][point], sample_pmf=sample, set=to_sets(targets, row)[0])
    return write_run(loaded, results, runs_root, experiment={"id": exp_id, "point": point})

"""
The data folder: one root ``D`` for every command and service.

    D/engine/   the Engine's registry: run folders and index.sqlite
    D/sim/      Sim's temporary model store

``D`` is ``--data-dir`` where a command takes it, else ``FLOWTIME_DATA_DIR``,
else ``./data``. Earlier releases wrote CLI runs straight into ``D``; such a
folder is migrated on first use (runs moved into ``D/engine``, the disposable
index dropped) and the move is reported. This is an edge module: the core
never reads the environment or touches folders.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from flowtime.records import record

ENV = "FLOWTIME_DATA_DIR"
DEFAULT = Path("data")
ENGINE = "engine"
SIM = "sim"
_INDEX_FILES = ("index.sqlite", "index.sqlite-journal", "index.sqlite-wal", "index.sqlite-shm")
# Run folders of the old layout (ASCII: the writer only ever made these).
_LEGACY_RUN = re.compile(r"^run_(?:[0-9]{8}T[0-9]{6}Z_[0-9a-f]{8}|deterministic_[0-9a-f]{8})\Z")


@record
class DataDir:
    """
    The folders under one data root.

    >>> d = DataDir(Path("data"))
    >>> d.engine.as_posix(), d.sim.as_posix()
    ('data/engine', 'data/sim')
    """

    root: Path

    @property
    def engine(self) -> Path:
        return self.root / ENGINE

    @property
    def sim(self) -> Path:
        return self.root / SIM


def resolve(option: Path | str | None = None) -> DataDir:
    """The data folder named by ``option``, else ``FLOWTIME_DATA_DIR``, else ``./data``."""
    if option is not None and str(option) != "":
        return DataDir(Path(option))
    env = os.environ.get(ENV, "").strip()
    return DataDir(Path(env) if env else DEFAULT)


def legacy_runs(root: Path) -> list[Path]:
    """Run folders (with a manifest) sitting directly in ``root``: the old CLI layout."""
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(Path(e.path) for e in entries
                  if _LEGACY_RUN.match(e.name) and e.is_dir(follow_symlinks=False)
                  and os.path.isfile(os.path.join(e.path, "manifest.json")))


def migrate(data: DataDir) -> list[str]:
    """
    Move runs of the old layout into ``D/engine``; returns one message per
    action taken (empty when there was nothing to do). Safe to run from
    several processes at once: each folder moves with one rename, and a
    folder another process moved first is skipped.
    """
    runs = legacy_runs(data.root)
    if not runs:
        return []
    data.engine.mkdir(parents=True, exist_ok=True)
    moved = 0
    kept: list[str] = []
    for folder in runs:
        target = data.engine / folder.name
        if target.exists():
            kept.append(folder.name)
            continue
        try:
            os.rename(folder, target)
        except FileNotFoundError:
            continue  # moved by another process a moment ago
        moved += 1
    for name in _INDEX_FILES:  # the old index described the old folders; it is rebuilt from them
        old = data.root / name
        if old.is_file() and not old.is_symlink():
            old.unlink(missing_ok=True)
        elif old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
    messages = []
    if moved:
        messages.append(f"moved {moved} run folder{'s' if moved != 1 else ''} from {data.root} into "
                        f"{data.engine} (the data folder now keeps Engine runs in engine/ and Sim models in sim/)")
    if kept:
        messages.append(f"left {len(kept)} run folder(s) in {data.root} because {data.engine} already holds "
                        f"folders of the same name: {', '.join(kept[:3])}{' ...' if len(kept) > 3 else ''}")
    return messages

"""
A corrupt index.sqlite is set aside and rebuilt from the run folders: the Engine
starts, lists every run, and says what happened; ``rebuild()`` never crashes.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tests.artifacts.test_registry import ids, make_run
from tests.hardening.servers import engine
from typer.testing import CliRunner

from flowtime.artifacts.registry import INDEX_FILE, Registry
from flowtime.cli import app

PAGE = 4096


def _random_bytes(index: Path) -> None:
    index.write_bytes(os.urandom(8 * PAGE))


def _zeroed_pages(index: Path) -> None:
    data = bytearray(index.read_bytes())
    data[PAGE:] = bytes(len(data) - PAGE)  # every page after the header page
    index.write_bytes(bytes(data))


def _zeroed_header(index: Path) -> None:
    data = bytearray(index.read_bytes())
    data[:PAGE] = bytes(PAGE)
    index.write_bytes(bytes(data))


def _truncated(index: Path) -> None:
    data = index.read_bytes()
    index.write_bytes(data[: len(data) // 3])


def _a_directory(index: Path) -> None:
    index.unlink()
    index.mkdir()
    (index / "something").write_text("x")


def _a_fifo(index: Path) -> None:
    index.unlink()
    os.mkfifo(index)  # opening it would block: it must be set aside without being opened


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "random bytes": _random_bytes,
    "zeroed pages": _zeroed_pages,
    "zeroed header": _zeroed_header,
    "truncated": _truncated,
    "a directory": _a_directory,
    **({"a FIFO": _a_fifo} if hasattr(os, "mkfifo") else {}),
}


def three_runs(root: Path) -> list[str]:
    made = [make_run(root, (i, i + 1), minutes=i, template="t", title=f"Run {i}") for i in range(3)]
    assert Registry(root).rebuild() == 3
    return made[::-1]  # newest first


def set_aside(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if ".corrupt-" in p.name)


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_corrupt_index_is_set_aside_and_rebuilt_on_first_use(
        tmp_path: Path, corruption: str, caplog: pytest.LogCaptureFixture) -> None:
    made = three_runs(tmp_path)
    CORRUPTIONS[corruption](tmp_path / INDEX_FILE)
    reg = Registry(tmp_path)
    with caplog.at_level(logging.WARNING, logger="flowtime.registry"):
        assert ids(reg) == made
    [note] = reg.recovered
    [aside] = set_aside(tmp_path)
    assert note.set_aside == str(tmp_path / aside) and aside.startswith("index.sqlite.corrupt-")
    assert any(aside in r.getMessage() and "set aside" in r.getMessage() for r in caplog.records)
    with sqlite3.connect(tmp_path / INDEX_FILE) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    assert reg.count() == 3 and reg.get(made[0]).id == made[0]
    assert set_aside(tmp_path) == [aside]  # once only


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_rebuild_never_crashes_on_a_corrupt_index(tmp_path: Path, corruption: str) -> None:
    made = three_runs(tmp_path)
    CORRUPTIONS[corruption](tmp_path / INDEX_FILE)
    assert Registry(tmp_path).rebuild() == 3
    assert ids(Registry(tmp_path)) == made


def test_the_siblings_of_a_corrupt_index_go_aside_with_it(tmp_path: Path) -> None:
    """A leftover journal must never be rolled back into the new index (a folder is never opened)."""
    made = three_runs(tmp_path)
    _a_directory(tmp_path / INDEX_FILE)
    for suffix in ("-journal", "-wal", "-shm"):
        (tmp_path / f"{INDEX_FILE}{suffix}").write_bytes(os.urandom(PAGE))
    assert ids(Registry(tmp_path)) == made
    [aside] = [n for n in set_aside(tmp_path) if "-" not in n.rsplit("corrupt-", 1)[1]]
    assert set_aside(tmp_path) == sorted([aside, f"{aside}-journal", f"{aside}-shm", f"{aside}-wal"])


def test_start_up_check_finds_damage_plain_queries_miss(tmp_path: Path) -> None:
    """A zeroed page of one secondary index: listings still answer, ``PRAGMA quick_check`` does not."""
    made = three_runs(tmp_path)
    index = tmp_path / INDEX_FILE
    with sqlite3.connect(index) as conn:
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'artifacts_type_title'"
                            ).fetchone()[0]
    conn.close()
    data = bytearray(index.read_bytes())
    data[(root - 1) * PAGE : root * PAGE] = bytes(PAGE)
    index.write_bytes(bytes(data))
    reg = Registry(tmp_path)
    note = reg.check()
    assert note is not None and note.reason.startswith("quick_check:")
    assert len(set_aside(tmp_path)) == 1
    assert ids(reg, sort_by="title") == made
    assert reg.check() is None  # the new index is sound


def test_a_sound_index_passes_the_start_up_check_untouched(tmp_path: Path) -> None:
    three_runs(tmp_path)
    before = (tmp_path / INDEX_FILE).stat().st_ino
    assert Registry(tmp_path).check() is None
    assert (tmp_path / INDEX_FILE).stat().st_ino == before and set_aside(tmp_path) == []


@pytest.mark.parametrize("corruption", ["random bytes", "zeroed header", "a directory"])
def test_the_engine_starts_on_a_corrupt_index_and_says_so(tmp_path: Path, corruption: str) -> None:
    made = three_runs(tmp_path)
    CORRUPTIONS[corruption](tmp_path / INDEX_FILE)
    with engine(tmp_path) as url, httpx.Client(base_url=url) as c:
        health = c.get("/v1/healthz").json()
        [note] = health["indexRecovered"]
        assert note["setAside"] == str(tmp_path / set_aside(tmp_path)[0])
        assert health["runCount"] == 3
        assert [r["id"] for r in c.get("/v1/runs").json()["runs"]] == made


def test_the_cli_rebuilds_a_corrupt_index(tmp_path: Path) -> None:
    made = three_runs(tmp_path / "engine")
    _random_bytes(tmp_path / "engine" / INDEX_FILE)
    result = CliRunner().invoke(app, ["runs", "rebuild-index", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == f"indexed 3 runs in {tmp_path / 'engine'}"
    assert ids(Registry(tmp_path / "engine")) == made

"""The experiment index: filters, order and pages over stored folders merged with experiments in memory."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flowtime.artifacts.experiment_index import ExperimentQuery, StoredExperiment, matches, sort_key
from flowtime.artifacts.experiments import ExperimentStore

KINDS = ("sweep", "montecarlo", "goalseek")


def exp_id(i: int) -> str:
    return f"exp_20250101T0000{i:02d}Z_{i:08x}"


def stored(i: int) -> StoredExperiment:
    # titles repeat in other cases ("Alpha"/"alpha") so that ties and NOCASE order are exercised
    return StoredExperiment(exp_id(i), KINDS[i % 3], ["Alpha", "beta", "alpha", "Gamma"][i % 4], (i * 7) % 11,
                            "done", f"2025-01-01T00:00:{i:02d}.000000Z", f"2025-01-01T00:01:{i:02d}.000000Z",
                            f"hash{i % 2}", (f"param{i % 5}",))


def write_folder(root: Path, e: StoredExperiment) -> None:
    folder = root / "experiments" / e.id
    folder.mkdir(parents=True)
    (folder / "experiment.json").write_text(json.dumps(e.to_json()), encoding="utf-8")


@pytest.fixture
def store(tmp_path: Path) -> ExperimentStore:
    for i in range(20):
        write_folder(tmp_path, stored(i))
    s = ExperimentStore(tmp_path)
    s.check()
    return s


def live_rows() -> list[StoredExperiment]:
    """In memory: created between and after the stored ones, in every status but done."""
    out = []
    for n, (i, status) in enumerate([(40, "running"), (41, "queued"), (42, "failed"), (43, "cancelled")]):
        at = f"2025-01-01T00:00:{(n * 6 + 3):02d}.500000Z" if n < 3 else "2025-01-01T00:09:00.000000Z"
        out.append(StoredExperiment(exp_id(i), KINDS[n % 3], ["beta", "ALPHA", "zeta", "Beta"][n], n, status,
                                    at, "", "hash1", ("param9",)))
    return out


def brute(q: ExperimentQuery, rows: list[StoredExperiment]) -> list[str]:
    kept = sorted((e for e in rows if matches(e, q)), key=lambda e: sort_key(e, q.sort_by),
                  reverse=q.sort_order == "desc")
    return [e.id for e in kept[q.skip:q.skip + q.limit]]


def test_the_index_is_filled_from_the_folders_newest_first(store: ExperimentStore) -> None:
    page = store.query(ExperimentQuery(limit=3))
    assert page.total == 20
    assert [e.id for e in page.experiments] == [exp_id(19), exp_id(18), exp_id(17)]
    assert page.experiments[0] == stored(19)


def test_filters_by_kind_status_text_model_and_dates(store: ExperimentStore) -> None:
    ids = lambda q: [e.id for e in store.query(q, live_rows()).experiments]  # noqa: E731
    assert ids(ExperimentQuery(kinds=("goalseek",), limit=100)) == [exp_id(i) for i in (17, 42, 14, 11, 8, 5, 2)]
    assert ids(ExperimentQuery(statuses=("running", "failed"))) == [exp_id(42), exp_id(40)]
    # the text is any of id, title, kind, a parameter's target, the model hash, case-insensitive
    assert ids(ExperimentQuery(search="PARAM3")) == [exp_id(18), exp_id(13), exp_id(8), exp_id(3)]
    assert ids(ExperimentQuery(search="param9")) == [exp_id(43), exp_id(42), exp_id(41), exp_id(40)]
    assert ids(ExperimentQuery(search="zeta", statuses=("failed",))) == [exp_id(42)]
    after, before = datetime(2025, 1, 1, 0, 0, 16, tzinfo=UTC), datetime(2025, 1, 1, 0, 0, 17, tzinfo=UTC)
    assert ids(ExperimentQuery(created_after=after, created_before=before)) == [exp_id(17), exp_id(16)]
    assert ids(ExperimentQuery(model_hash="hash0", created_after=after)) == [exp_id(18), exp_id(16)]
    assert ids(ExperimentQuery(created_after=datetime.max.replace(tzinfo=UTC))) == []


@pytest.mark.parametrize("sort_by", ["created", "id", "title", "points"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_every_page_of_the_merged_listing_equals_sorting_everything(store: ExperimentStore, sort_by: str,
                                                                    order: str) -> None:
    every = [stored(i) for i in range(20)] + live_rows()
    for limit in (1, 3, 7, 30):
        for skip in range(0, 26):
            q = ExperimentQuery(sort_by=sort_by, sort_order=order, limit=limit, skip=skip)
            page = store.query(q, live_rows())
            assert [e.id for e in page.experiments] == brute(q, every), (limit, skip)
            assert page.total == 24


def test_a_corrupt_index_is_set_aside_and_rebuilt(store: ExperimentStore, tmp_path: Path) -> None:
    index = tmp_path / "experiments" / "index.sqlite"
    index.write_bytes(b"not a database" * 100)
    fresh = ExperimentStore(tmp_path)
    fresh.check()
    assert fresh.query(ExperimentQuery()).total == 20
    assert len(fresh.index.recovered) == 1
    assert list((tmp_path / "experiments").glob("index.sqlite.corrupt-*"))


def test_folders_added_or_removed_behind_its_back(store: ExperimentStore, tmp_path: Path) -> None:
    write_folder(tmp_path, stored(25))
    (tmp_path / "experiments" / exp_id(3) / "experiment.json").unlink()
    # a vanished folder is never listed, even before a sync
    assert exp_id(3) not in [e.id for e in store.query(ExperimentQuery(limit=100)).experiments]
    store.sync()
    page = store.query(ExperimentQuery(limit=100))
    assert page.total == 20 and page.experiments[0].id == exp_id(25)


def test_delete_drops_the_row(store: ExperimentStore) -> None:
    store.delete(exp_id(19))
    assert store.query(ExperimentQuery(limit=1)).experiments[0].id == exp_id(18)
    assert store.rebuild() == 19

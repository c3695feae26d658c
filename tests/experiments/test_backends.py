"""
Experiment batches and backends: the same bytes in-process, in a process pool
and on Dask; the acceptance run on a real Dask scheduler with two worker
processes on loopback, one killed mid-way; cancellation; backend names.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import flowtime
from flowtime.errors import ExperimentCancelled, ExperimentError, ModelValidationError
from flowtime.experiments import batch as batch_module
from flowtime.experiments.backends import DaskBackend, InProcess, ProcessPool, Result, backend_for
from flowtime.experiments.batch import Batch, evaluate_batch, plan_of

# A queue fed by a PMF: q[t] = MAX(0, q[t-1] + arr[t] - cap[t]); served = arr + q[t-1] - q[t].
MODEL = """schemaVersion: 1
grid: {bins: 12, binSize: 1, binUnit: hours}
nodes:
  - {id: cap, kind: const, values: 2}
  - {id: arr, kind: pmf, pmf: {values: [0, 1, 4], probabilities: [0.25, 0.5, 0.25]}}
  - {id: q, kind: expr, expr: 'MAX(0, SHIFT(q, 1) + arr - cap)'}
  - {id: served, kind: expr, expr: 'arr + SHIFT(q, 1) - q'}
"""
OUTPUTS = ("q", "served")
SRC = str(Path(flowtime.__file__).resolve().parents[1])
DEADLINE_S = 240.0  # the acceptance runs take seconds; past this something hangs, and the run is cancelled


def sweep_batches(points: int, size: int) -> list[Batch]:
    """A sweep of cap over 0.5..5 (expected PMF values, no seeds) in batches of ``size``."""
    caps = np.linspace(0.5, 5.0, points)
    return [Batch(start=s, sets=tuple({"cap": float(c)} for c in caps[s:s + size]),
                  seeds=(None,) * len(caps[s:s + size]), sample_pmf=False, outputs=OUTPUTS)
            for s in range(0, points, size)]


def montecarlo_batches(replications: int, size: int, seed: int = 7) -> list[Batch]:
    """Replications with sampled PMF draws, one seed per replication (seed + index)."""
    return [Batch(start=s, sets=({},) * min(size, replications - s),
                  seeds=tuple(range(seed + s, seed + min(s + size, replications))), sample_pmf=True, outputs=OUTPUTS)
            for s in range(0, replications, size)]


def joined(results: Sequence[Result]) -> dict[str, np.ndarray]:
    return {n: np.concatenate([r[n] for r in results]) for n in OUTPUTS}


def same_bytes(a: Sequence[Result], b: Sequence[Result]) -> bool:
    return len(a) == len(b) and all(x.keys() == y.keys() and all(x[k].tobytes() == y[k].tobytes() for k in x)
                                    for x, y in zip(a, b, strict=True))


# -- evaluate_batch ------------------------------------------------------------------------------


def test_a_batch_equals_evaluate_many_and_each_evaluate() -> None:
    b = Batch(start=0, sets=({"cap": 1}, {"cap": [3] * 12}, {}), seeds=(11, 12, 13), sample_pmf=True,
              outputs=OUTPUTS)
    got = evaluate_batch(MODEL, b)
    p = flowtime.plan(flowtime.load_model(MODEL))
    many = p.evaluate_many(seeds=[11, 12, 13], sets=[{"cap": 1}, {"cap": [3] * 12}, {}], sample_pmf=True)
    for n in OUTPUTS:
        assert got[n].shape == (3, 12) and got[n].flags.c_contiguous and got[n].flags.owndata
        assert got[n].tobytes() == np.ascontiguousarray(many[n]).tobytes()
        for k, (s, seed) in enumerate(zip(b.sets, b.seeds, strict=True)):
            assert got[n][k].tobytes() == p.evaluate(seed, sample_pmf=True, set=s)[n].tobytes()


def test_expected_values_by_hand() -> None:
    # arr's expected value 0*.25 + 1*.5 + 4*.25 = 1.5 every bin; cap 1: q grows 0.5 a bin -> q[11] = 6.0;
    # cap 2 >= 1.5: q stays 0 and served = arr = 1.5.
    b = Batch(start=40, sets=({"cap": 1}, {"cap": 2}), seeds=(None, None), sample_pmf=False, outputs=OUTPUTS)
    got = evaluate_batch(MODEL, b)
    assert got["q"][0].tolist() == [0.5 * (t + 1) for t in range(12)]
    assert got["served"][0].tolist() == [1.0] * 12
    assert got["q"][1].tolist() == [0.0] * 12 and got["served"][1].tolist() == [1.5] * 12


def test_results_survive_the_next_batch() -> None:
    # The engine reuses its pooled blocks; a batch's results must be copies that later batches leave alone.
    first = evaluate_batch(MODEL, montecarlo_batches(4, 4, seed=1)[0])
    kept = {n: a.copy() for n, a in first.items()}
    evaluate_batch(MODEL, montecarlo_batches(4, 4, seed=99)[0])
    assert all(first[n].tobytes() == kept[n].tobytes() for n in OUTPUTS)


def test_plan_cache_is_keyed_by_text_and_bounded() -> None:
    assert plan_of(MODEL) is plan_of(MODEL)
    other = MODEL.replace("values: 2}", "values: 3}")
    assert plan_of(other) is not plan_of(MODEL)
    texts = [MODEL + f"# {i}\n" for i in range(batch_module.CACHE_SIZE + 1)]
    firsts = plan_of(texts[0])
    for t in texts[1:]:
        plan_of(t)
    assert len(batch_module._plans) == batch_module.CACHE_SIZE
    assert plan_of(texts[0]) is not firsts  # evicted, planned again


def test_bad_batches_and_file_series_are_errors() -> None:
    with pytest.raises(ModelValidationError, match="one seed per point"):
        evaluate_batch(MODEL, Batch(start=0, sets=({}, {}), seeds=(1,), sample_pmf=False, outputs=OUTPUTS))
    with pytest.raises(ModelValidationError, match="nope"):
        evaluate_batch(MODEL, Batch(start=0, sets=({},), seeds=(1,), sample_pmf=False, outputs=("nope",)))
    with_file = ("schemaVersion: 1\ngrid: {bins: 3, binSize: 1, binUnit: hours}\ntopology:\n  nodes:\n"
                 "    - id: A\n      kind: service\n      semantics: {arrivals: 'file:arr.csv', served: arr}\n"
                 "nodes:\n  - {id: arr, kind: const, values: 1}\n")
    with pytest.raises(ModelValidationError, match="file:"):
        evaluate_batch(with_file, Batch(start=0, sets=({},), seeds=(1,), sample_pmf=False, outputs=("arr",)))


# -- the same bytes on every backend ---------------------------------------------------------------


@pytest.fixture(scope="module")
def local_dask() -> Iterator[DaskBackend]:
    with DaskBackend("local") as backend:
        yield backend


def test_every_backend_gives_the_same_bytes(local_dask: DaskBackend) -> None:
    batches = sweep_batches(30, 7) + montecarlo_batches(40, 9, seed=3)
    # renumber so the starts run on: sweep points 0..29, replications 30..69
    batches = [Batch(start=b.start + (30 if b.sample_pmf else 0), sets=b.sets, seeds=b.seeds,
                     sample_pmf=b.sample_pmf, outputs=b.outputs) for b in batches]
    seen: list[int] = []
    base = InProcess().run(MODEL, batches, on_batch=lambda i, r: seen.append(i))
    assert seen == list(range(len(batches)))
    with ProcessPool(2) as pool:
        assert same_bytes(pool.run(MODEL, batches), base)
        assert same_bytes(pool.run(MODEL, batches[::-1]), base[::-1])  # a warm pool, run again
    assert same_bytes(local_dask.run(MODEL, batches), base)
    # and replications really differ from one another (the seeds reach the draws)
    mc = joined(base[5:])["q"]
    assert len({row.tobytes() for row in mc}) > 30


def test_results_come_in_batch_order_and_on_batch_sees_each_once(local_dask: DaskBackend) -> None:
    batches = montecarlo_batches(60, 5)
    seen: list[int] = []
    out = local_dask.run(MODEL, batches, on_batch=lambda i, r: seen.append(i))
    assert sorted(seen) == list(range(12))
    assert same_bytes(out, InProcess().run(MODEL, batches))


# -- cancellation ------------------------------------------------------------------------------------


def cancel_after(n: int, event: threading.Event) -> Any:
    count = [0]

    def on_batch(i: int, result: Result) -> None:
        count[0] += 1
        if count[0] >= n:
            event.set()

    return on_batch


def test_in_process_cancel_stops_between_batches() -> None:
    stop = threading.Event()
    with pytest.raises(ExperimentCancelled) as info:
        InProcess().run(MODEL, sweep_batches(50, 5), on_batch=cancel_after(2, stop), cancel=stop)
    assert (info.value.done, info.value.total) == (2, 10)


@pytest.mark.parametrize("make", [lambda: ProcessPool(2), lambda: DaskBackend("local")], ids=["pool", "dask"])
def test_pool_and_dask_cancel_then_run_again(make: Any) -> None:
    many = montecarlo_batches(2000, 10)
    with make() as backend:
        stop = threading.Event()
        with pytest.raises(ExperimentCancelled) as info:
            backend.run(MODEL, many, on_batch=cancel_after(1, stop), cancel=stop)
        assert 1 <= info.value.done < info.value.total == 200
        small = sweep_batches(10, 5)
        assert same_bytes(backend.run(MODEL, small), InProcess().run(MODEL, small))


# -- backend names ---------------------------------------------------------------------------------


def test_backend_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWTIME_DASK_ADDRESS", raising=False)
    assert isinstance(backend_for(None), InProcess) and isinstance(backend_for("inprocess"), InProcess)
    pool = backend_for("processes:3")
    assert isinstance(pool, ProcessPool) and pool.workers == 3 and pool.method != "fork"
    assert isinstance(backend_for("processes"), ProcessPool)
    remote = backend_for("tcp://10.0.0.5:8786")
    assert isinstance(remote, DaskBackend) and remote.address == "tcp://10.0.0.5:8786"
    assert isinstance(backend_for("local"), DaskBackend)
    monkeypatch.setenv("FLOWTIME_DASK_ADDRESS", "tcp://127.0.0.1:9999")
    env = backend_for(None)
    assert isinstance(env, DaskBackend) and env.address == "tcp://127.0.0.1:9999"
    assert isinstance(backend_for("inprocess"), InProcess)  # an explicit choice wins over the environment
    for bad in ("processes:0", "processes:x", "threads"):
        with pytest.raises(ExperimentError, match=r"processes|unknown backend"):
            backend_for(bad)


# -- acceptance: a real scheduler and two worker processes, one killed mid-way ----------------------


class Cluster:
    """A ``dask scheduler`` and ``dask worker`` processes on loopback, every one killed at the end."""

    def __init__(self, folder: Path) -> None:
        self.file = folder / "scheduler.json"
        self.env = {**os.environ, "PYTHONPATH": SRC, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.logs = folder

    def spawn(self, *args: str, name: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_" + args[0], *args[1:]],
                                stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        self.spawn("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                   "--scheduler-file", str(self.file), name="scheduler")
        limit = time.monotonic() + 60
        while not self.file.exists():
            if time.monotonic() > limit or self.procs[0].poll() is not None:
                raise RuntimeError(f"the dask scheduler did not start: {(self.logs / 'scheduler.log').read_text()}")
            time.sleep(0.05)
        time.sleep(0.1)  # the file is written, then closed
        for _ in range(2):
            self.add_worker()

    def add_worker(self) -> subprocess.Popen[bytes]:
        n = len(self.workers)
        w = self.spawn("worker", "--scheduler-file", str(self.file), "--nthreads", "1", "--no-nanny",
                       "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{n}", name=f"worker{n}")
        self.workers.append(w)
        return w

    def address(self) -> str:
        import json

        return str(json.loads(self.file.read_text())["address"])

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=30)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def run_killing(backend: DaskBackend, batches: list[Batch], cluster: Cluster,
                after: int) -> tuple[list[Result], list[int], int]:
    """
    Run ``batches``; once ``after`` of them have come back, SIGKILL the first worker the scheduler says is
    computing a task (so the kill loses work). Cancelled past DEADLINE_S. Answers the results, the batch
    indexes in arrival order and which worker (w<k>, ``cluster.workers[k]``) was killed.
    """
    seen: list[int] = []
    killed: list[int] = []
    stop, started = threading.Event(), threading.Event()
    timer = threading.Timer(DEADLINE_S, stop.set)
    timer.start()
    client = backend.client()
    names = {a: int(str(w["name"])[1:]) for a, w in client.scheduler_info()["workers"].items()}

    def killer() -> None:  # polls the scheduler: the victim dies holding work, never between two tasks
        started.wait()
        while not stop.is_set() and not killed and len(seen) < len(batches):
            busy = [a for a, keys in client.processing().items() if keys and a in names]
            if busy:
                k = names[sorted(busy)[0]]
                cluster.workers[k].send_signal(signal.SIGKILL)
                killed.append(k)
            time.sleep(0.002)

    def on_batch(i: int, result: Result) -> None:
        seen.append(i)
        if len(seen) >= after:
            started.set()

    watcher = threading.Thread(target=killer, daemon=True)
    watcher.start()
    try:
        out = backend.run(MODEL, batches, on_batch=on_batch, cancel=stop)
    except ExperimentCancelled as e:
        pytest.fail(f"the run did not finish within {DEADLINE_S:.0f} s ({e}); a lost worker was not recovered")
    finally:
        timer.cancel()
        started.set()
        stop.set()
        watcher.join(timeout=30)
    assert killed, "no worker was seen computing before the run finished: none was killed mid-run"
    return out, seen, killed[0]


def test_a_real_cluster_losing_a_worker_gives_the_in_process_results(cluster: Cluster) -> None:
    sweep, mc = sweep_batches(2000, 50), montecarlo_batches(1000, 25)
    with DaskBackend(cluster.address()) as backend:
        backend.client().wait_for_workers(2, timeout=60)
        got, seen, victim = run_killing(backend, sweep, cluster, after=5)
        assert cluster.workers[victim].wait(timeout=30) == -signal.SIGKILL
        assert sorted(seen) == list(range(40))  # every batch came back exactly once
        assert same_bytes(got, InProcess().run(MODEL, sweep))
        assert sum(r["q"].shape[0] for r in got) == 2000
        # A fresh worker joins; a busy one is killed during the Monte Carlo run.
        cluster.add_worker()
        backend.client().wait_for_workers(2, timeout=60)
        got, seen, second = run_killing(backend, mc, cluster, after=8)
        assert second != victim and cluster.workers[second].wait(timeout=30) == -signal.SIGKILL
        assert sorted(seen) == list(range(40))
        assert same_bytes(got, InProcess().run(MODEL, mc))
        assert len({row.tobytes() for row in joined(got)["q"]}) > 500  # 1,000 distinct replications, mostly


# -- through flowtime.experiment: a backend named by a string ---------------------------------------

PMF_EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "pmf-monte-carlo.yaml").read_text(encoding="utf-8")


def test_the_same_experiment_on_every_backend_gives_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.delenv("FLOWTIME_DASK_ADDRESS", raising=False)
    spec = {"kind": "montecarlo", "settings": {"replications": 4500}, "seed": 31, "capture": ["served"],
            "metrics": [{"series": "served", "aggregate": "p95"}],
            "parameters": [{"target": "requests", "distribution": {"kind": "uniform", "low": 800, "high": 1200}}]}
    runs = {name: flowtime.experiment(spec, model=PMF_EXAMPLE, backend=name)
            for name in (None, "processes:2", "local")}
    base = runs[None]
    assert base.n == 4500  # more than one batch (at most 2,000 points each): the backends really split the work
    for name, r in runs.items():
        assert json.dumps(r.to_json()) == json.dumps(base.to_json()), name
        assert r.series["served"].tobytes() == base.series["served"].tobytes(), name
    # the named backend was closed after the run; replicate(k) still gives the k-th replication exactly
    again = runs["local"].replicate(4321)
    assert again.series["served"][0].tobytes() == base.series["served"][4321].tobytes()

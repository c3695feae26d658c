"""The engine commands as a user runs them: exact lines, exit codes, stdin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from flowtime.cli import app

GOOD = "schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\nnodes:\n" \
       "  - {id: a, values: [1, 2]}\n  - {id: b, kind: expr, expr: 'a * 3'}\n"
BAD = "schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\nnodes:\n" \
      "  - {id: a, values: [1, 2, 3]}\n  - {id: b, kind: expr, expr: 'aa * 3'}\n"


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_run_prints_the_run_id_its_folder_and_a_summary_of_each_series(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["run", write(tmp_path, GOOD), "--data-dir", str(tmp_path / "d")])
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    run_id = lines[0]
    folder = tmp_path / "d" / "engine" / run_id
    assert run_id.startswith("run_")
    assert lines[1:] == [
        f"  {folder}",
        "  2 bins of 1 hours; no seed; 2 series",
        "series  min  mean  max  last",
        "a         1   1.5    2     2",
        "b         3   4.5    6     6",
    ]
    assert (folder / "series" / "b@B@DEFAULT.csv").read_text() == "t,value\n0,3\n1,6\n"


def test_run_quiet_prints_only_the_run_id_and_out_is_the_old_name_of_data_dir(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["run", write(tmp_path, GOOD), "--out", str(tmp_path / "d"), "--quiet"])
    assert r.exit_code == 0
    (run_id,) = r.stdout.splitlines()
    assert (tmp_path / "d" / "engine" / run_id / "manifest.json").is_file()


def test_run_set_gives_const_nodes_new_values_and_records_them(tmp_path: Path) -> None:
    model = write(tmp_path, GOOD)
    r = CliRunner().invoke(app, ["run", model, "--data-dir", str(tmp_path), "--set", "a=[5, 7]", "--json"])
    assert r.exit_code == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["overrides"] == {"a": [5.0, 7.0]}
    assert body["summary"]["b"] == {"min": 15.0, "mean": 18.0, "max": 21.0, "last": 21.0}
    edited = write(tmp_path, GOOD.replace("values: [1, 2]", "values: [5, 7]"), "edited.yaml")
    same = json.loads(CliRunner().invoke(app, ["run", edited, "--data-dir", str(tmp_path), "--json"]).stdout)
    assert body["modelHash"] == same["modelHash"]  # the same model as the edited file
    run = json.loads((Path(body["path"]) / "run.json").read_text())
    assert run["overrides"] == {"a": [5.0, 7.0]}
    scalar = CliRunner().invoke(app, ["run", model, "--data-dir", str(tmp_path), "-s", "a=10", "--quiet"])
    assert scalar.exit_code == 0


def test_run_set_errors_name_the_node_and_what_is_expected(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "flowtime", "run", write(tmp_path, GOOD), "--data-dir",
                           str(tmp_path), "--set", "b=3", "--set", "a=[1, 2, 3]", "--set", "aa=1"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "error: 3 errors in the overrides:",
        "  - set.a: gives 3 values but grid.bins is 2; give one number (every bin) or one value per bin",
        "  - set.aa: unknown node 'aa' (did you mean `a`?); --set takes a const node's id",
        "  - set.b: node 'b' is an expr node; only const nodes can be set (their values are the model's inputs)",
    ]
    assert not (tmp_path / "engine").exists() or not any((tmp_path / "engine").glob("run_*"))
    usage = subprocess.run([sys.executable, "-m", "flowtime", "run", write(tmp_path, GOOD), "--set", "a"],
                           capture_output=True, text=True)
    assert usage.returncode == 2 and "expected NODE=VALUE" in usage.stderr


def test_a_seed_beyond_64_bits_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "flowtime", "run", write(tmp_path, GOOD), "--data-dir",
                           str(tmp_path), "--seed", "18446744073709551616"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "does not fit in 64 bits" in proc.stderr and "Traceback" not in proc.stderr
    top = subprocess.run([sys.executable, "-m", "flowtime", "run", write(tmp_path, GOOD), "--data-dir",
                          str(tmp_path), "--seed", "18446744073709551615", "--quiet"], capture_output=True, text=True)
    assert top.returncode == 0, top.stderr


def test_a_data_dir_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    proc = subprocess.run([sys.executable, "-m", "flowtime", "run", write(tmp_path, GOOD), "--out", str(taken)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr == (f"error: data folder '{taken}' is a file, not a folder; pass --data-dir with a folder "
                           "(it is created if missing)\n")
    assert taken.read_text() == "not a folder"


def test_validate_reads_at_most_the_model_size_limit_from_a_device() -> None:
    proc = subprocess.run([sys.executable, "-m", "flowtime", "validate", "/dev/zero"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1
    assert "model text is larger than 67108864 bytes" in proc.stderr and "Traceback" not in proc.stderr


def test_runs_in_the_old_layout_are_moved_into_the_engine_folder(tmp_path: Path) -> None:
    """Earlier releases wrote CLI runs straight into the data folder: they are moved once, with a note."""
    from flowtime.artifacts.writer import write_run
    from flowtime.engine import evaluate
    from flowtime.model.load import load_model

    loaded = load_model(GOOD)
    old = write_run(loaded, evaluate(loaded.model), tmp_path).run_id
    (tmp_path / "index.sqlite").write_bytes(b"old index")
    proc = subprocess.run([sys.executable, "-m", "flowtime", "runs", "list", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0
    assert proc.stderr.startswith(f"note: moved 1 run folder from {tmp_path} into {tmp_path / 'engine'}")
    assert old in proc.stdout and (tmp_path / "engine" / old / "manifest.json").is_file()
    assert not (tmp_path / old).exists() and not (tmp_path / "index.sqlite").exists()
    again = subprocess.run([sys.executable, "-m", "flowtime", "runs", "list", "--data-dir", str(tmp_path)],
                           capture_output=True, text=True)
    assert again.stderr == "" and old in again.stdout


def test_lenient_outputs_skips_an_unknown_output_with_a_located_warning(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "outputs:\n  - series: b\n  - series: nope\n")
    strict = subprocess.run([sys.executable, "-m", "flowtime", "run", path, "--data-dir", str(tmp_path / "d")],
                            capture_output=True, text=True)
    assert strict.returncode == 1 and "line 8" in strict.stderr and "--lenient-outputs" in strict.stderr
    r = CliRunner().invoke(app, ["run", path, "--data-dir", str(tmp_path / "d"), "--lenient-outputs"])
    assert r.exit_code == 0, r.stderr
    assert "line 8" in r.stderr and "unknown node 'nope'" in r.stderr
    assert r.stdout.splitlines()[-1].split() == ["b", "3", "4.5", "6", "6"]


def test_run_json_summary(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["run", write(tmp_path, GOOD), "--data-dir", str(tmp_path), "--json",
                                 "--deterministic-run-id"])
    data = json.loads(r.stdout)
    assert data["runId"].startswith("run_deterministic_") and data["series"] == ["a", "b"]


def test_validate_ok_and_invalid_with_every_problem(tmp_path: Path) -> None:
    ok = CliRunner().invoke(app, ["validate", write(tmp_path, GOOD)])
    assert ok.exit_code == 0 and ok.stdout.startswith("ok: ") and "2 nodes, 2 bins of 1 hours" in ok.stdout


def test_invalid_model_exits_1_naming_each_problem(tmp_path: Path) -> None:
    path = write(tmp_path, BAD)
    proc = subprocess.run([sys.executable, "-m", "flowtime", "validate", path], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "2 errors" in proc.stderr
    assert "line 4" in proc.stderr and "has 3 values but grid.bins is 2" in proc.stderr
    assert "unknown node 'aa' (did you mean `a`?)" in proc.stderr


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "flowtime", "run", str(tmp_path / "nope.yaml")],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "file not found" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_flag_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "flowtime", "run", "--bogus"], capture_output=True, text=True)
    assert proc.returncode == 2


def test_run_reads_the_model_from_stdin(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "flowtime", "run", "-", "--out", str(tmp_path)],
                          input=GOOD, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("run_")


def test_graph_prints_nodes_edges_and_order(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["graph", write(tmp_path, GOOD)])
    assert r.stdout.splitlines() == ["nodes:", "  a (const)", "  b (expr) <- a", "edges:", "  a -> b",
                                     "order: a -> b"]


def test_help_lists_every_command_without_importing_them() -> None:
    code = ("import sys\nfrom flowtime.cli import app, COMMANDS\n"
            "from typer.testing import CliRunner\n"
            "out = CliRunner().invoke(app, ['--help']).stdout\n"
            "missing = [c for c in COMMANDS if c not in out]\n"
            "loaded = sorted(m for m in sys.modules if m.startswith('flowtime.') and m.split('.')[1] in "
            "('engine', 'artifacts', 'sim', 'api', 'ui', 'model') or m in ('httpx', 'numpy', 'fastapi'))\n"
            "print(missing, loaded)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "[] []", proc.stderr


def test_run_imports_neither_the_services_nor_sim() -> None:
    code = ("import sys\nfrom flowtime.cli import app\nfrom typer.testing import CliRunner\n"
            "r = CliRunner().invoke(app, ['run', '--help'])\n"
            "print(sorted(m for m in sys.modules if m.startswith(('flowtime.sim', 'flowtime.api', 'flowtime.ui', "
            "'httpx', 'fastapi', 'uvicorn', 'pydantic'))))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "[]", proc.stderr


def test_version_flag_prints_the_package_version() -> None:
    from flowtime import __version__

    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout.strip() == f"flowtime {__version__}"


def test_run_reads_file_series_relative_to_the_model_file_not_the_working_folder(tmp_path: Path) -> None:
    (tmp_path / "m" / "tele").mkdir(parents=True)
    (tmp_path / "m" / "tele" / "demand.csv").write_text("bin_index,value\n0,4\n1,6\n")
    model = write(tmp_path / "m", "schemaVersion: 1\ngrid: {bins: 2, binSize: 1, binUnit: hours}\n"
                  "nodes:\n  - {id: cap, values: [5, 5]}\ntopology:\n  nodes:\n    - id: Desk\n"
                  "      kind: serviceWithBuffer\n      semantics: {arrivals: 'file:tele/demand.csv', served: cap}\n")
    r = CliRunner().invoke(app, ["run", model, "--data-dir", str(tmp_path / "d"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["summary"]["demand"]["max"] == 6
    (tmp_path / "m" / "tele" / "demand.csv").write_text("bin_index,value\n0,4\n2,6\n")
    proc = subprocess.run([sys.executable, "-m", "flowtime", "validate", model], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 1
    assert "tele/demand.csv line 3: bin_index 2 is outside the grid (0..1)" in proc.stderr

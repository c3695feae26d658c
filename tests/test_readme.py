"""
Every ``flowtime`` command in the README's shell blocks runs, as written, on a fresh data folder.

Placeholders are filled the way a reader would: ``model.yaml`` is the PMF example
(the commands around it use ``--sample-pmf``); ``RUN`` is the first run the
earlier commands made (``hello.yaml``: it has the ``served`` series the README
shows), and ``RUN_A``/``RUN_B`` the second and the first (one grid).

Not run here: the venv/pip lines of the quick start (``.ci/run`` runs the test
command itself; installing takes minutes and the network), ``flowtime up`` and
``flowtime serve`` (long-running; started for real by ``tests/ui/test_serve_cli.py``
and ``tests/ui/test_data_folder_browser.py``) and the development tools
(``ruff``, ``mypy``: run by ``.ci/run``'s environment).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LONG_RUNNING = ("flowtime up", "flowtime serve")


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()  # trailing comments
            if line.startswith("flowtime ") and not line.startswith(LONG_RUNNING):
                commands.append(line)
    return commands


def test_the_readme_has_commands_to_run() -> None:
    commands = readme_commands()
    assert len(commands) >= 10
    assert any("|" in c for c in commands)  # the Sim -> Engine pipe is among them


def test_every_readme_command_runs_on_a_fresh_data_folder(tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(ROOT / "examples", work / "examples")
    shutil.copy(ROOT / "examples" / "pmf-monte-carlo.yaml", work / "model.yaml")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "FLOWTIME_DATA_DIR": str(tmp_path / "data"),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("FLOWTIME_SIM_DATA_DIR", None)
    made: list[str] = []
    for command in readme_commands():
        if "RUN" in command:
            assert len(made) >= 2, f"no runs yet for {command!r}"
            command = (command.replace("RUN_A", made[1]).replace("RUN_B", made[0])
                       .replace("RUN ", f"{made[0]} ").replace(" RUN", f" {made[0]}"))
        proc = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=work, env=env, capture_output=True,
                              text=True, timeout=180)
        assert proc.returncode == 0, f"{command!r} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        assert "Traceback" not in proc.stderr, command
        if command.startswith("flowtime run ") or "| flowtime run " in command:
            run_id = re.search(r"run_[0-9]{8}T[0-9]{6}Z_[0-9a-f]{8}|run_deterministic_[0-9a-f]{8}", proc.stdout)
            assert run_id, f"{command!r} printed no run id:\n{proc.stdout}"
            made.append(run_id.group())
    assert (work / "run.parquet").stat().st_size > 0
    assert {p.name for p in (tmp_path / "data" / "engine").iterdir() if p.name.startswith("run_")} >= set(made)

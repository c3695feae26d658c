"""
One data folder, end to end: a run made with ``flowtime run --data-dir D`` is in
the runs list of the UI that ``flowtime up --data-dir D`` serves, in headless Chromium.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.browser import SHOTS, chromium_page, marks

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

pytestmark = marks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A data folder with one CLI run in it, served by ``flowtime up``; yields (folder, UI URL)."""
    data = tmp_path / "D"
    made = subprocess.run([sys.executable, "-m", "flowtime", "run", str(EXAMPLES / "hello.yaml"),
                           "--data-dir", str(data), "--quiet"], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    (data / "run-id").write_text(made.stdout.strip())
    ports = [free_port(), free_port(), free_port()]
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowtime", "up", "--data-dir", str(data), "--engine-port", str(ports[0]),
         "--sim-port", str(ports[1]), "--ui-port", str(ports[2])],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # up prints its URLs, then one line once all three are healthy
            if line.startswith("FlowTime is up"):
                break
            assert proc.poll() is None, line
        yield data, f"http://127.0.0.1:{ports[2]}"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_a_run_made_on_the_command_line_is_listed_in_the_ui(up: tuple[Path, str]) -> None:
    data, ui = up
    run_id = (data / "run-id").read_text()
    assert (data / "engine" / run_id / "manifest.json").is_file()
    with chromium_page() as page:
        page.goto(ui + "/runs")
        row = page.locator(f"a[href='/runs/{run_id}']")
        row.first.wait_for()
        assert "Hello FlowTime" in page.content()
        page.screenshot(path=str(SHOTS / "cli-run-in-ui-list.png"), full_page=True)
        row.first.click()
        page.wait_for_url(f"**/runs/{run_id}")
        assert run_id in page.content()

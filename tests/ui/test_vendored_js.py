"""The browser libraries under ``ui/static/vendor`` are exactly the pinned npm files (decision 0040)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "vendor_js.py"
VENDOR = ROOT / "src" / "flowtime" / "ui" / "static" / "vendor"


def test_every_vendored_file_matches_its_pin_and_the_check_says_so() -> None:
    pins = json.loads((VENDOR / "vendored.json").read_text())
    assert {"dagre", "uplot"} <= pins.keys()
    for spec in pins.values():
        for pin in spec["files"].values():
            assert hashlib.sha256((VENDOR / pin["to"]).read_bytes()).hexdigest() == pin["sha256"], pin["to"]
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_tampered_tarball_or_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import vendor_js
    finally:
        sys.path.remove(str(SCRIPT.parent))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"window.dagre = {};"
        info = tarfile.TarInfo("package/dist/dagre.min.js")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(SystemExit):  # the tarball's digest is not the pinned one
        vendor_js.check_integrity(buf.getvalue(), "sha512-" + "A" * 86 + "==")
    members = {"package/dist/dagre.min.js": {"to": "dagre/dagre.min.js", "sha256": "0" * 64}}
    with pytest.raises(SystemExit):  # a file whose sha256 differs from its pin
        vendor_js.extract(buf.getvalue(), members, verify=True)
    assert vendor_js.extract(buf.getvalue(), members, verify=False) == {"dagre/dagre.min.js": data}
    monkeypatch.setattr(vendor_js, "VENDOR", Path("/nonexistent"))
    assert vendor_js.check_tree(json.loads((VENDOR / "vendored.json").read_text())) == [
        "dagre/dagre.min.js", "dagre/LICENSE", "uplot/uPlot.iife.min.js", "uplot/uPlot.min.css", "uplot/LICENSE"]

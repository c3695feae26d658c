"""
Start-up: ``flowtime run examples/hello.yaml`` as a new process, against
``python -c "import numpy"`` (the floor: every run needs NumPy), timed in turns.

    python benchmarks/bench_startup.py [--repeats N]

Target: the run (parse, evaluate, write and index a run folder) within 2x the
NumPy import. ``flowtime --help`` is listed too: it must not import any
sub-command. Each figure is the median of N alternated runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from timing import paired_median_times

ROOT = Path(__file__).resolve().parent.parent
_SCRIPT = Path(sys.executable).with_name("flowtime")
# The console script users run (as pip installed it), else the module.
FLOWTIME = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "flowtime"]


# As an installed package runs: with bytecode caches (some sandboxes set this variable,
# which would make every start compile the sources again).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _call(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    ap.add_argument("--repeats", type=int, default=31)
    ap.add_argument("--quick", action="store_true", help="11 repeats")
    args = ap.parse_args()
    repeats = 11 if args.quick else args.repeats
    data = Path(tempfile.mkdtemp(prefix="flowtime-bench-startup-"))
    try:
        numpy = [sys.executable, "-c", "import numpy"]
        run = [*FLOWTIME, "run", str(ROOT / "examples" / "hello.yaml"), "--data-dir", str(data), "--quiet"]
        helps = [*FLOWTIME, "--help"]
        floor, t_run = paired_median_times(lambda: _call(numpy), lambda: _call(run), repeats)
        floor2, t_help = paired_median_times(lambda: _call(numpy), lambda: _call(helps), repeats)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    rows = [
        ("flowtime run examples/hello.yaml", t_run, floor, "<= 2x"),
        ("flowtime --help", t_help, floor2, "(info)"),
    ]
    print(f"{'benchmark':<36} {'flowtime':>10} {'import numpy':>13} {'ratio':>7}  target")
    ok = True
    for name, t, base, target in rows:
        ratio = t / base
        mark = ""
        if target == "<= 2x":
            mark = " ok" if ratio <= 2 else " MISSED"
            ok = ok and ratio <= 2
        print(f"{name:<36} {t * 1000:>8.1f}ms {base * 1000:>11.1f}ms {ratio:>6.2f}x  {target}{mark}")
    print(f"(median of {repeats} alternated runs each; python {sys.version.split()[0]})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

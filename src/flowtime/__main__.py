"""``python -m flowtime``: the same command line as the ``flowtime`` script."""

from __future__ import annotations

from flowtime.cli import main

if __name__ == "__main__":
    main()

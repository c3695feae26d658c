"""Reading model text from a path, stdin (``-``) or a string: the file edge of the core."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flowtime.errors import ModelSyntaxError, Problem


def read_model_text(source: str | os.PathLike[str]) -> tuple[str, str]:
    """(text, name for messages) of ``source``: ``-`` is stdin, anything else a file path."""
    if str(source) == "-":
        return sys.stdin.read(), "<stdin>"
    path = Path(source)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelSyntaxError([Problem("", f"file not found: {path}")], str(path)) from None
    except OSError as exc:
        raise ModelSyntaxError([Problem("", f"cannot read {path}: {exc.strerror}")], str(path)) from None
    try:
        return data.decode("utf-8-sig"), str(path)
    except UnicodeDecodeError as exc:
        raise ModelSyntaxError(
            [Problem("", f"not UTF-8 text (byte {exc.start}): is this a model YAML file?")], str(path)
        ) from None

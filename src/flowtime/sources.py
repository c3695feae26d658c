"""Reading model text from a path, stdin (``-``) or a string: the file edge of the core."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import BinaryIO

from flowtime.errors import LimitExceeded, ModelSyntaxError, Problem
from flowtime.model.limits import DEFAULT_LIMITS

# Longer than any path a file system takes: such text is never tried as a file name.
_MAX_PATH = 4096


def _read_bounded(f: BinaryIO, limit: int, name: str) -> bytes:
    data = f.read(limit + 1)  # one byte more tells "too long" from "exactly at the limit"
    if len(data) > limit:
        raise LimitExceeded(f"{name}: model text is larger than {limit} bytes (Limits.max_model_bytes); "
                            "is this a model file?", limit_name="max_model_bytes")
    return data


def read_model_text(source: str | os.PathLike[str], *, max_bytes: int = DEFAULT_LIMITS.max_model_bytes
                    ) -> tuple[str, str]:
    """
    (text, name for messages) of ``source``: ``-`` is stdin, anything else a file path.
    At most ``max_bytes`` are read, so a device or an endless pipe cannot fill memory.
    """
    if str(source) == "-":
        data = _read_bounded(sys.stdin.buffer, max_bytes, "<stdin>")
        name = "<stdin>"
    else:
        path = Path(source)
        name = str(path)
        try:
            if path.is_dir():
                raise ModelSyntaxError([Problem("", f"{path} is a folder; give a model YAML file")], name)
            with path.open("rb") as f:
                data = _read_bounded(f, max_bytes, name)
        except FileNotFoundError:
            raise ModelSyntaxError([Problem("", f"file not found: {path}")], name) from None
        except OSError as exc:
            raise ModelSyntaxError([Problem("", f"cannot read {path}: {exc.strerror}")], name) from None
    try:
        return data.decode("utf-8-sig"), name
    except UnicodeDecodeError as exc:
        raise ModelSyntaxError(
            [Problem("", f"not UTF-8 text (byte {exc.start}): is this a model YAML file?")], name
        ) from None


def names_a_file(text: str) -> bool:
    """Whether a one-line string should be read as a path (it names an existing file) rather than as model text."""
    if "\n" in text or len(text) > _MAX_PATH or not text.strip() or text.lstrip()[:1] in "{[":
        return False
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False

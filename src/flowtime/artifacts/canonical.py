"""
Canonical bytes: number text for CSVs, JSON for hashes, SHA-256 helpers.

Every CSV and every hash goes through here, so the same series gives the same
bytes on every machine. Numbers are written the way the reference engine does
(.NET shortest round-trip): ``8`` not ``8.0``, ``0.30000000000000004``,
``1E-05``, ``1E+15``, ``-0``, ``NaN``, ``Infinity``.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import orjson

from flowtime.model.hashing import canonical_json, sha256_text

__all__ = ["CSV_HEADER", "canonical_json", "format_number", "format_rows", "series_csv", "sha256_text"]

CSV_HEADER = "t,value\n"


def format_number(v: float) -> str:
    """
    One float as the reference writes it.

    >>> [format_number(x) for x in (8.0, 0.1 + 0.2, 1e-05, 1e15, 123456789012345.6, -0.0, float("nan"))]
    ['8', '0.30000000000000004', '1E-05', '1E+15', '123456789012345.6', '-0', 'NaN']
    >>> format_number(1.2345678901234568e17), format_number(12345678901234567.0), format_number(2.5e-07)
    ('1.2345678901234568E+17', '12345678901234568', '2.5E-07')
    """
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "Infinity" if v > 0 else "-Infinity"
    sign = "-" if (v < 0 or (v == 0 and str(v).startswith("-"))) else ""
    digits, exp = _digits(abs(v))
    if not digits:
        return sign + "0"
    nd = len(digits)
    if exp <= -5 or exp + 1 > max(15, nd):
        mant = digits[0] + ("." + digits[1:] if nd > 1 else "")
        return f"{sign}{mant}E{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    if exp < 0:
        return f"{sign}0.{'0' * (-exp - 1)}{digits}"
    if nd <= exp + 1:
        return sign + digits + "0" * (exp + 1 - nd)
    return f"{sign}{digits[: exp + 1]}.{digits[exp + 1 :]}"


def _digits(a: float) -> tuple[str, int]:
    """Shortest significant digits of ``a`` > 0 and its decimal exponent."""
    s = repr(a)
    if "e" in s:
        mant, e = s.split("e")
        exp = int(e)
        whole, _, frac = mant.partition(".")
        digits = (whole + frac).rstrip("0")
        return digits, exp
    whole, _, frac = s.partition(".")
    if whole != "0":
        digits = (whole + frac).rstrip("0")
        return digits.lstrip("0") or "0", len(whole) - 1
    stripped = frac.lstrip("0")
    if not stripped:
        return "", 0
    return stripped.rstrip("0"), -(len(frac) - len(stripped)) - 1


@lru_cache(maxsize=8)
def _row_prefixes(n: int) -> list[bytes]:
    return [b"%d," % t for t in range(n)]


@lru_cache(maxsize=8)
def _bin_keys(n: int) -> list[str]:
    return [str(t) for t in range(n)]


# {"0":1.5,"1":2} -> 0,1.5\n1,2\n in one C pass: the key/value and item separators
# differ, so a byte translation turns a JSON object into CSV rows.
_ROWS = bytes.maketrans(b":,", b",\n")
_JSON_ONLY = b'"{}'


# Below 1e-4 the reference writes 1E-05, 9.999E-05, 1.5E-07, 1E-300; orjson
# writes 0.00001, 0.00009999 (down to 1e-5) and 1.5e-7, 1e-300. Rewritten in C.
# (Plain replacements where there are many matches: before Python 3.12, a
# template with group references is expanded in Python, about 1 us a match.)
_FIXED_TINY = (
    (re.compile(rb",(-?)0\.0000([1-9])(\d+)"), rb",\1\2.\3E-05"),
    (re.compile(rb",(-?)0\.0000([1-9])(?=[,\n])"), rb",\1\2E-05"),
)
# orjson's exponents start at -6 (1e-5 and up are written in full).
_SHORT_EXPONENTS = {end: tuple((b"e-%d%s" % (d, end), b"E-0%d%s" % (d, end)) for d in range(6, 10))
                    for end in (b"\n", b",")}


def _tiny_as_reference(text: bytes, end: bytes = b"\n") -> bytes:
    """``text``'s values below 1e-4 in the reference's form; each value follows a comma, ends in ``end``."""
    if b",0.0000" in text or b",-0.0000" in text:
        for pattern, replacement in _FIXED_TINY:
            text = pattern.sub(replacement, text)
    if b"e-" in text:
        for short, padded in _SHORT_EXPONENTS[end]:  # e-7 -> E-07
            text = text.replace(short, padded)
        text = text.replace(b"e-", b"E-")  # e-300 -> E-300
    return text


def _special(arr: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Values the fast path cannot write: non-finite, from 1e15 up (.NET's exponent rule), or -0."""
    with np.errstate(invalid="ignore"):
        out: npt.NDArray[np.bool_] = ~(np.abs(arr) < 1e15) | ((arr == 0) & np.signbit(arr))
    return out


def format_rows(block: npt.NDArray[np.float64]) -> list[bytes]:
    """
    CSV bodies (``t,value`` rows) for every row of a 2-D block of series.

    Below 1e15 the reference's text is Python's shortest ``repr`` without a
    trailing ``.0`` (with ``E-05``-style exponents below 1e-4); orjson writes
    the same digits, in C. A series is written as the JSON object
    ``{"t": v, ...}`` and translated into rows; whole numbers go as ints (no
    ``.0`` to strip) when a whole series is whole, else their ``.0`` is stripped
    afterwards; small numbers get the reference's exponent form. Non-finite
    values, -0 and values from 1e15 up go through ``format_number``.
    """
    if block.ndim != 2:
        raise ValueError("format_rows expects a 2-D block")
    n_series, bins = block.shape
    if bins == 0:
        return [b""] * n_series
    special = _special(block)
    has_special: list[bool] = np.asarray(special.any(axis=1)).tolist()
    safe = np.where(special, 0.0, block) if any(has_special) else block
    whole = safe == np.trunc(safe)
    any_whole: list[bool] = np.asarray(whole.any(axis=1)).tolist()
    all_whole: list[bool] = np.asarray(whole.all(axis=1)).tolist()
    any_tiny: list[bool] = np.asarray(((np.abs(safe) < 1e-4) & (safe != 0)).any(axis=1)).tolist()
    keys = _bin_keys(bins)
    out: list[bytes] = []
    for i in range(n_series):
        if has_special[i]:
            out.append(_rows_with_specials(block[i], safe[i], special[i], any_tiny[i]))
            continue
        # |v| < 1e15 here, so whole numbers are exact as int64.
        values = safe[i].astype(np.int64).tolist() if all_whole[i] else safe[i].tolist()
        text = orjson.dumps(dict(zip(keys, values, strict=True)), option=orjson.OPT_APPEND_NEWLINE)
        text = text.translate(_ROWS, _JSON_ONLY)
        if any_whole[i] and not all_whole[i]:
            text = text.replace(b".0\n", b"\n")
        out.append(_tiny_as_reference(text) if any_tiny[i] else text)
    return out


def _rows_with_specials(row: npt.NDArray[np.float64], safe: npt.NDArray[np.float64],
                        special: npt.NDArray[np.bool_], tiny: bool) -> bytes:
    text = b"," + orjson.dumps(safe, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1] + b","
    text = text.replace(b".0,", b",")
    parts = (_tiny_as_reference(text, b",") if tiny else text).split(b",")[1:-1]
    for j in np.flatnonzero(special).tolist():
        parts[j] = format_number(float(row[j])).encode()
    return b"\n".join(map(bytes.__add__, _row_prefixes(row.size), parts)) + b"\n"


def series_csv(arr: npt.NDArray[np.float64]) -> bytes:
    """
    The CSV bytes of one series: header ``t,value``, ``\\n`` line ends, no BOM.

    >>> series_csv(np.array([1.0, 0.5, -0.0, 1e-05, 12.25, 3e20]))
    b't,value\\n0,1\\n1,0.5\\n2,-0\\n3,1E-05\\n4,12.25\\n5,3E+20\\n'
    """
    return CSV_HEADER.encode() + format_rows(np.asarray(arr, dtype=np.float64).reshape(1, -1))[0]

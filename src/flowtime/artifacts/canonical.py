"""
Canonical bytes: number text for CSVs, JSON for hashes, SHA-256 helpers.

Every CSV and every hash goes through here, so the same series gives the same
bytes on every machine. Numbers are written the way the reference engine does
(.NET shortest round-trip): ``8`` not ``8.0``, ``0.30000000000000004``,
``1E-05``, ``1E+15``, ``-0``, ``NaN``, ``Infinity``.
"""

from __future__ import annotations

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


def _special(arr: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Values outside plain fixed notation: non-finite, huge, tiny, or negative zero."""
    a = np.abs(arr)
    with np.errstate(invalid="ignore"):
        out: npt.NDArray[np.bool_] = (
            ~np.isfinite(arr) | (a >= 1e15) | ((a < 1e-4) & (arr != 0)) | ((arr == 0) & np.signbit(arr))
        )
    return out


def format_rows(block: npt.NDArray[np.float64]) -> list[bytes]:
    """
    CSV bodies (``t,value`` rows) for every row of a 2-D block of series.

    In the range 1e-4 <= |v| < 1e15 the reference's text is Python's shortest
    ``repr`` without a trailing ``.0``; orjson writes exactly that, in C. A
    series is written as the JSON object ``{"t": v, ...}`` and translated into
    rows; whole numbers go as ints (no ``.0`` to strip) when a whole series is
    whole, else their ``.0`` is stripped afterwards. Values outside that range
    go through ``format_number``.
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
    keys = _bin_keys(bins)
    out: list[bytes] = []
    for i in range(n_series):
        if has_special[i]:
            out.append(_rows_with_specials(block[i], safe[i], special[i]))
            continue
        # |v| < 1e15 here, so whole numbers are exact as int64.
        values = safe[i].astype(np.int64).tolist() if all_whole[i] else safe[i].tolist()
        text = orjson.dumps(dict(zip(keys, values, strict=True)), option=orjson.OPT_APPEND_NEWLINE)
        text = text.translate(_ROWS, _JSON_ONLY)
        out.append(text.replace(b".0\n", b"\n") if any_whole[i] and not all_whole[i] else text)
    return out


def _rows_with_specials(row: npt.NDArray[np.float64], safe: npt.NDArray[np.float64],
                        special: npt.NDArray[np.bool_]) -> bytes:
    text = orjson.dumps(safe, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1] + b","
    parts = text.replace(b".0,", b",").split(b",")[:-1]
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

"""
The model's ``analysis:`` block: the analyser's thresholds, with the reference's values as defaults.

    analysis:
      tolerance: 1.0e-6          # absolute slack of every invariant check
      utilization: {yellow: 0.7, red: 0.9}   # service colour: < yellow green, < red yellow, else red
      latency: {yellow: 1.0, red: 1.5}       # queue colour, as multiples of slaMin
      slaCompletion: 0.95        # a service bin meets its SLA when served / arrivals >= this
      streakBins: 3              # backlog growth / overload / age-risk streaks
      nonStationary: {ratio: 0.25, minBins: 4}
      ignore: [code, ...]        # codes not reported for this model
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Protocol

from flowtime.expr.functions import suggest
from flowtime.records import record


@record
class AnalysisSettings:
    tolerance: float = 1e-6
    utilization_yellow: float = 0.7
    utilization_red: float = 0.9
    latency_yellow: float = 1.0  # x slaMin
    latency_red: float = 1.5  # x slaMin
    sla_completion: float = 0.95
    streak_bins: int = 3
    non_stationary_ratio: float = 0.25
    non_stationary_min_bins: int = 4
    ignore: frozenset[str] = frozenset()


DEFAULT_ANALYSIS = AnalysisSettings()


# -- reading the block -----------------------------------------------------------------------------

Path = tuple[str | int, ...]
KEYS = ("tolerance", "utilization", "latency", "slaCompletion", "streakBins", "nonStationary", "ignore")
_PAIRS = {"utilization": ("yellow", "red"), "latency": ("yellow", "red"), "nonStationary": ("ratio", "minBins")}


class Reporter(Protocol):
    def error(self, path: Path, message: str, *, key: bool = False) -> None: ...

    def warn(self, path: Path, message: str, *, key: bool = False) -> None: ...


def read_analysis(raw: Any, at: Reporter) -> AnalysisSettings:
    """
    The ``analysis:`` mapping, every problem reported through ``at`` at its
    path: wrong types and ranges are errors, unknown keys and unknown codes
    in ``ignore`` warnings (with a "did you mean"). What cannot be read keeps
    its default.
    """
    here: Path = ("analysis",)
    if raw is None:
        return DEFAULT_ANALYSIS
    if not isinstance(raw, dict):
        at.error(here, f"analysis must be a mapping (tolerance, utilization, latency, ...), got {_what(raw)}")
        return DEFAULT_ANALYSIS
    for key in raw:
        if key not in KEYS:
            at.warn((*here, key), f"analysis field '{key}' is not known and is ignored{suggest(str(key), KEYS)}",
                    key=True)
    d = DEFAULT_ANALYSIS
    got: dict[str, Any] = {}
    tol = _number(raw, "tolerance", here, at, lo=0.0)
    if tol is not None:
        got["tolerance"] = tol
    for key, (a, b) in _PAIRS.items():
        sub = raw.get(key)
        if sub is None:
            continue
        path = (*here, key)
        if not isinstance(sub, dict):
            at.error(path, f"analysis.{key} must be a mapping {{{a}, {b}}}, got {_what(sub)}")
            continue
        for k in sub:
            if k not in (a, b):
                at.warn((*path, k), f"analysis.{key} field '{k}' is ignored{suggest(str(k), (a, b))}", key=True)
        if key == "nonStationary":
            ratio = _number(sub, "ratio", path, at, lo=0.0, hi=1.0, open_lo=True)
            bins = _whole(sub, "minBins", path, at, lo=2)
            if ratio is not None:
                got["non_stationary_ratio"] = ratio
            if bins is not None:
                got["non_stationary_min_bins"] = bins
            continue
        stem = "utilization" if key == "utilization" else "latency"
        lo_v = _number(sub, a, path, at, lo=0.0, open_lo=True)
        hi_v = _number(sub, b, path, at, lo=0.0, open_lo=True)
        yellow = lo_v if lo_v is not None else getattr(d, f"{stem}_yellow")
        red = hi_v if hi_v is not None else getattr(d, f"{stem}_red")
        if yellow > red:
            at.error(path, f"analysis.{key}: yellow ({yellow:g}) must not be above red ({red:g})")
            continue
        got[f"{stem}_yellow"], got[f"{stem}_red"] = yellow, red
    sla = _number(raw, "slaCompletion", here, at, lo=0.0, hi=1.0)
    if sla is not None:
        got["sla_completion"] = sla
    streak = _whole(raw, "streakBins", here, at, lo=1)
    if streak is not None:
        got["streak_bins"] = streak
    if "ignore" in raw:
        ignore = _ignore(raw["ignore"], (*here, "ignore"), at)
        if ignore is not None:
            got["ignore"] = ignore
    return dataclasses.replace(d, **got) if got else d


def _ignore(raw: Any, path: Path, at: Reporter) -> frozenset[str] | None:
    # Imported here: the analyser's vocabulary sits above the model (it imports the model's modules).
    from flowtime.analysis.codes import CODES

    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(c, str) for c in items):
        at.error(path, f"analysis.ignore must be a list of codes such as [queue_latency_unreported], got "
                 f"{_what(raw)}")
        return None
    known = tuple(CODES)
    for i, code in enumerate(items):
        if code not in CODES:
            at.warn((*path, i) if isinstance(raw, list) else path, f"analysis.ignore: '{code}' is not a code the "
                    f"analyser reports{suggest(code, known)}; it ignores nothing")
    return frozenset(c.strip() for c in items)


def _number(raw: dict[Any, Any], key: str, here: Path, at: Reporter, *, lo: float, hi: float | None = None,
            open_lo: bool = False) -> float | None:
    if key not in raw:
        return None
    v = raw[key]
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))
    if ok:
        x = float(v)
        ok = (x > lo if open_lo else x >= lo) and (hi is None or x <= hi)
    if not ok:
        bound = f"> {lo:g}" if open_lo else f">= {lo:g}"
        rng = f"a number {bound}" if hi is None else (
            f"above {lo:g} and at most {hi:g}" if open_lo else f"between {lo:g} and {hi:g}")
        at.error((*here, key), f"{'.'.join(map(str, (*here, key)))} must be {rng}, got {_what(v)}")
        return None
    return float(v)


def _whole(raw: dict[Any, Any], key: str, here: Path, at: Reporter, *, lo: int) -> int | None:
    if key not in raw:
        return None
    v = raw[key]
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        at.error((*here, key), f"{'.'.join(map(str, (*here, key)))} must be a whole number >= {lo}, "
                 f"got {_what(v)}")
        return None
    return v


def _what(v: Any) -> str:
    if isinstance(v, bool):
        return f"a boolean ({str(v).lower()})"
    if isinstance(v, str):
        return f"the text {v!r}"
    if isinstance(v, dict | list):
        return f"a {type(v).__name__.replace('dict', 'mapping')}"
    return "nothing (null)" if v is None else repr(v)

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

"""Input limits, enforced before work starts. One object, passed in explicitly."""

from __future__ import annotations

from flowtime.records import record


@record
class Limits:
    """
    Upper bounds on what a model may ask for.

    >>> Limits().max_bins
    1000000
    """

    max_bins: int = 1_000_000
    max_bin_size: int = 1000
    max_nodes: int = 100_000
    max_outputs: int = 100_000
    max_expression_length: int = 10_000
    max_expression_nesting: int = 200
    max_model_bytes: int = 64 * 1024 * 1024
    max_yaml_nodes: int = 20_000_000
    # nodes x bins: the number of values a run computes and stores (8 bytes each,
    # several times over while writing). None = no bound (the library's own use).
    max_cells: int | None = None
    # Characters of all expressions of a model together: parsing and compiling
    # cost grows with it (about 10 us per character today). None = no bound.
    max_expression_total: int | None = None


DEFAULT_LIMITS = Limits()

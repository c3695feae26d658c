"""
What a run means: derived metrics per topology node and the analyser's findings.

A pure core over a ``Model`` and its evaluated series (a mapping of node id to
a float64 array) - it imports neither the engine nor the artifact store, so
the engine's writer, the state API, validation and Sim all use the same code
and the same vocabulary of codes (``analysis.codes``). An undefined value in
a derived series is NaN here; it becomes JSON ``null`` and an empty CSV cell
at the edges.
"""

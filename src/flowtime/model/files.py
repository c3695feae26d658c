"""
``file:`` series: what the loader asks of its edge, and which node each file becomes.

The loader never opens a file. A caller that may read files passes a
``SeriesFiles`` callable (``flowtime.series_files`` builds them: beside the
model file for the CLI, inside a telemetry root over HTTP). It takes the path
as written after ``file:`` and the grid's bins, and returns the values, or
raises ``SeriesFileError`` naming the file and line. Without one, a ``file:``
reference is a located error.

Each distinct file (by ``FileSeries.key``, the resolved path) becomes one
const node. Its id is the file's stem - the reference's lookup key
(``engine-head.md`` §3.1) - when that is a valid node id nobody else holds;
otherwise (the stem names a node, or another file has the same stem) the node
gets the internal id ``<stem>#file<k>``, which runs do not show, and a warning
says so (0020).

>>> stem_of("file://telemetry/Arrivals.csv"[5:]), stem_of("/abs/served.csv")
('Arrivals', 'served')
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import PurePosixPath

from flowtime.errors import SeriesFileError
from flowtime.model.schema import ConstNode, FloatArray
from flowtime.model.topology import Path, Reporter, SeriesRef, Topology
from flowtime.records import record

_NAME = re.compile(r"^[^\W\d][\w.\-]{0,127}\Z")


@record
class FileSeries:
    """One file's series as read: ``values`` (one per bin) and ``key``, the path it was read from."""

    values: FloatArray
    key: str


SeriesFiles = Callable[[str, int], FileSeries]


def stem_of(path: str) -> str:
    """The lookup key of a ``file:`` path (the text after ``file:``): its file name without the suffix."""
    return PurePosixPath(path.replace("\\", "/").removeprefix("//")).stem


def load_files(topology: Topology, files: SeriesFiles | None, bins: int, taken: set[str],
               at: Reporter) -> tuple[Topology, list[ConstNode], dict[str, Path]]:
    """
    Read every file ``topology`` references through ``files``; the topology
    with each ``file:`` reference pointing at its node, those nodes and where each was first referenced.
    A reference that cannot be read is reported at its line and keeps ``node=''``.
    """
    by_key: dict[str, str] = {}  # resolved path -> node id
    nodes: list[ConstNode] = []
    origins: dict[str, Path] = {}
    ids = set(taken)

    def resolve(ref: SeriesRef, path: Path, owner: str, field: str) -> SeriesRef:
        if ref.form != "file" or ref.path is None:
            return ref
        where = f"{owner}: semantics.{field} `{ref.text}`"
        if files is None:
            at.error(path, f"{where}: `file:` series need a model file to resolve against; load the model from "
                     "its file (`flowtime run model.yaml`) - over HTTP the server needs a telemetry root "
                     "(FLOWTIME_TELEMETRY_ROOT or `flowtime serve engine --telemetry-root DIR`)")
            return ref
        try:
            got = files(ref.path, bins)
        except SeriesFileError as exc:
            at.error(path, f"{where}: {exc}")
            return ref
        node_id = by_key.get(got.key)
        if node_id is None:
            stem = stem_of(ref.path)
            node_id, k = stem, 1
            if not _NAME.match(stem) or stem in ids:
                node_id = f"{stem}#file{k}"
                while node_id in ids:
                    k += 1
                    node_id = f"{stem}#file{k}"
                at.warn(path, f"{where}: the stem '{stem}' is "
                        f"{'taken by another node' if _NAME.match(stem) else 'not a node id'}, so this file's "
                        f"series is the internal node '{node_id}' (not shown in runs); rename the file to show it")
            ids.add(node_id)
            by_key[got.key] = node_id
            nodes.append(ConstNode(node_id, got.values))
            origins[node_id] = path
        return dataclasses.replace(ref, node=node_id)

    tnodes = []
    for t in topology.nodes:
        owner = f"topology node '{t.id}'"
        sem = {k: resolve(v, ("topology", "nodes", t.index, "semantics", k), owner, k) if isinstance(v, SeriesRef)
               else v for k, v in (t.semantics or {}).items()}
        tnodes.append(dataclasses.replace(t, semantics=sem))
    constraints = []
    for i, c in enumerate(topology.constraints):
        sem = {k: resolve(v, ("topology", "constraints", i, "semantics", k), f"constraint '{c.id}'", k)
               if isinstance(v, SeriesRef) else v for k, v in c.semantics.items()}
        constraints.append(dataclasses.replace(c, semantics=sem))
    return dataclasses.replace(topology, nodes=tuple(tnodes), constraints=tuple(constraints)), nodes, origins

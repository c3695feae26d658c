// FlowTime topology layout: the run's full graph (/graph?mode=full) turned into what the topology draws —
// topology nodes as boxes, the computed nodes (const/expr/pmf/...) that feed one collapsed into chips on it,
// the computed nodes that feed none as small boxes of their own — placed left to right by flow with dagre
// (vendored, static/vendor/dagre; decision 0040). Pure: no DOM; topology.js draws the result.
//
// FT.topologyLayout(graph, {expanded: Set, flowTotals: Map(edgeId -> total flow)}) ->
//   { nodes: [{id, kind, category, topo, chips: [ids], x, y, width, height, rank}], edges: [{id, from, to,
//     kind: "flow"|"terminal"|"input", points: [{x, y}]}], width, height, order: [ids in topological order] }
(function () {
  "use strict";
  const FT = window.FT = window.FT || {};
  const NODE_W = 184, NODE_H = 70, CHIP_H = 20, FREE_W = 132, FREE_H = 40;

  // Which topology node each computed node feeds: a service claims the series its semantics name, and
  // (walking their inputs back) what those are computed from. The first claimant in topological order keeps
  // a node shared by several, so each computed node sits in exactly one place.
  function owners(graph) {
    const byId = new Map(graph.nodes.map((n) => [n.id, n]));
    const topo = graph.nodes.filter((n) => n.semantics).sort(byLayer);
    const edgeSeries = new Set();
    for (const e of graph.edges || []) for (const s of Object.values(e.series || {})) edgeSeries.add(s);
    const owner = new Map();
    for (const t of topo) {
      const stack = Object.values(t.semantics).filter((v) => typeof v === "string" && byId.has(v));
      while (stack.length) {
        const id = stack.pop();
        const n = byId.get(id);
        if (!n || n.semantics || owner.has(id) || edgeSeries.has(id)) continue;
        owner.set(id, t.id);
        for (const i of n.inputs || []) stack.push(i);
      }
    }
    return { byId, topo, owner, edgeSeries };
  }

  function byLayer(a, b) {
    const la = (a.ui && a.ui.layer) || 0, lb = (b.ui && b.ui.layer) || 0;
    if (la !== lb) return la - lb;
    const oa = (a.ui && a.ui.order) || 0, ob = (b.ui && b.ui.order) || 0;
    return oa !== ob ? oa - ob : (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  }

  function layout(graph, opts) {
    const expanded = (opts && opts.expanded) || new Set();
    const flowTotals = (opts && opts.flowTotals) || new Map();
    const { byId, topo, owner, edgeSeries } = owners(graph);
    const chips = new Map(topo.map((t) => [t.id, []]));
    for (const n of graph.nodes) if (owner.has(n.id)) chips.get(owner.get(n.id)).push(n.id);
    // Computed nodes feeding no service, and not an edge's own series, keep a small box of their own.
    const free = graph.nodes.filter((n) => !n.semantics && !owner.has(n.id) && !edgeSeries.has(n.id));

    const g = new window.dagre.graphlib.Graph({ multigraph: true });
    g.setGraph({ rankdir: "LR", nodesep: 26, ranksep: 70, edgesep: 12, marginx: 16, marginy: 16 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const t of topo) {
      const extra = expanded.has(t.id) ? chips.get(t.id).length * CHIP_H + 6 : 0;
      g.setNode(t.id, { width: NODE_W, height: NODE_H + extra });
    }
    for (const n of free) g.setNode(n.id, { width: FREE_W, height: FREE_H });

    const maxFlow = Math.max(1e-12, ...flowTotals.values());
    const edges = [];
    for (const e of graph.edges || []) {
      if (!g.hasNode(e.from) || !g.hasNode(e.to)) continue;
      const kind = e.edgeType === "terminal" ? "terminal" : "flow";
      // Heavier flows pull their ends closer to a straight line (dagre's weight is an integer priority).
      const weight = 1 + Math.round(9 * (flowTotals.get(e.id) || 0) / maxFlow);
      g.setEdge(e.from, e.to, { weight, minlen: 1 }, e.id);
      edges.push({ id: e.id, from: e.from, to: e.to, kind, measure: e.measure || e.field || "flow" });
    }
    // A free computed node hangs off the places its inputs live (their owner, or the input itself).
    for (const n of free) {
      const seen = new Set();
      for (const i of n.inputs || []) {
        const from = owner.get(i) || (g.hasNode(i) ? i : null);
        if (!from || from === n.id || seen.has(from)) continue;
        seen.add(from);
        const id = `input:${from}->${n.id}`;
        g.setEdge(from, n.id, { weight: 1, minlen: 1 }, id);
        edges.push({ id, from, to: n.id, kind: "input", measure: "input" });
      }
    }
    window.dagre.layout(g);

    const nodes = [];
    for (const id of g.nodes()) {
      const p = g.node(id);
      const n = byId.get(id);
      nodes.push({ id, kind: n.kind, category: n.category, topo: !!n.semantics, chips: chips.get(id) || [],
        expression: n.expression || null, x: p.x - p.width / 2, y: p.y - p.height / 2, width: p.width,
        height: p.height });
    }
    for (const e of edges) e.points = g.edge({ v: e.from, w: e.to, name: e.id }).points;
    // Topological reading order: by rank (x, left to right), then top to bottom.
    nodes.sort((a, b) => (Math.abs(a.x - b.x) > 1 ? a.x - b.x : a.y - b.y));
    const info = g.graph();
    return { nodes, edges, width: info.width || 0, height: info.height || 0, order: nodes.map((n) => n.id) };
  }

  FT.topologyLayout = layout;
  FT.topologyLayout.sizes = { NODE_W, NODE_H, CHIP_H };
})();

"""Summaries of a compiled artifact, as plain data (for --json) and as rich tables."""
from __future__ import annotations

import numpy as np

from rsnn2chip import ir
from rsnn2chip.artifact import CompiledNetwork


def summary(art: CompiledNetwork) -> dict:
    g, cores = art.graph, art.cores
    pops = [{
        "name": p.name, "layer": p.layer, "kind": p.kind, "neurons": p.size, "motif_size": p.motif_size,
        "motifs": p.n_motifs, "state_scale": p.state_scale,
        "params_lost_precision": [q["param"] for q in p.quant_stats.get("params", []) if q["lost_precision"]],
    } for p in ir.populations(g)]
    projs = [{"name": p.name, "synapses": p.n_synapses, **p.quant.stats} for p in ir.projections(g)]
    core_rows = [{"core": c, "chip": d["chip"], "position": d["position"], **d["used"]}
                 for c, d in sorted(cores.nodes(data=True))]
    limits = {r: art.target.core[r] for r in cores.graph["resources"]}
    return {
        "network": g.graph.get("name"), "target": art.target.name, "provenance": art.provenance,
        "populations": pops, "projections": projs,
        "mapping": {k: cores.graph[k] for k in ("mapper", "n_cores", "lower_bound", "cores_over_lb", "chips_used",
                                                 "intercore_synapses", "hop_weighted_synapses")},
        "limits": limits, "cores": core_rows, "warnings": art.warnings,
        "totals": {"neurons": sum(p.size for p in ir.populations(g, "lif")),
                   "synapses": sum(p.n_synapses for p in ir.projections(g))},
    }


def utilisation(core_rows: list[dict], limits: dict) -> np.ndarray:
    """(n_cores, n_resources) fraction of each limit used."""
    return np.array([[row[r] / limits[r] if limits[r] else 0.0 for r in limits] for row in core_rows])

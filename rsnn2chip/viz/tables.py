"""The report's tables as plain rows of strings, shared by the text and HTML renderers.

Both formats draw these same :class:`TableSpec` objects, so a number cannot
read one way in the terminal and another in the browser; ``--json`` carries
the unrounded values they were formatted from.
"""
from __future__ import annotations

from dataclasses import dataclass, field

RESOURCE_LABELS = {"neurons": "neurons", "synapse_memory_bits": "synapse memory (bits)",
                   "input_axons": "input axons", "output_axons": "output axons",
                   "neuron_profiles": "neuron profiles", "threshold_profiles": "threshold profiles"}
# Cells may hold a line break: both renderers show it (HTML with white-space: pre-line), which keeps the
# per-core table readable in an 80-column terminal.
UNCERTAIN = {True: "yes", False: "no", None: "not stated"}
MATRIX_MAX_CORES = 16  # larger inter-core matrices are shown as edge lists (all of it is in --json)


@dataclass
class TableSpec:
    id: str
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    styles: list[str | None] = field(default_factory=list)  # per row: None, "busiest", "emptiest"
    note: str = ""

    def add(self, cells, style: str | None = None) -> None:
        self.rows.append([str(c) for c in cells])
        self.styles.append(style)


def pct(x) -> str:
    return "-" if x is None else f"{x:.2f}%"


def num(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, int) or float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:.4g}"


def used_of(r: dict) -> str:
    return f"{num(r['used'])}/{num(r['limit'])}\n({pct(r['percent'])})"


def count_of(k: int, n: int, fraction: float) -> str:
    return f"{num(k)}/{num(n)} ({pct(100 * fraction)})"


# --------------------------------------------------------------------------- builders

def summary_table(rep: dict) -> TableSpec:
    t = TableSpec("summary-table", "network", ["", ""])
    m, tot = rep["mapping"], rep["totals"]
    for k, v in (("network", rep["network"]), ("target", f"{rep['target']} ({rep['target_description']})"),
                 ("LIF neurons", num(tot["neurons"])), ("neuron models", neuron_models(rep)),
                 ("input channels", num(tot["inputs"])),
                 ("synapses", num(tot["synapses"])), ("cores used", num(tot["cores"])),
                 ("lower bound on cores", num(m["lower_bound"]["cores"])),
                 ("cores / lower bound", num(m["cores_over_lb"])),
                 ("chips used", num(m["chips_used"])), ("mapper", m.get("mapper_chosen", m["mapper"])),
                 ("busiest core", _core_label(rep, rep["core_summary"]["busiest"])),
                 ("emptiest core", _core_label(rep, rep["core_summary"]["emptiest"]))):
        t.add([k, v])
    return t


def neuron_models(rep: dict) -> str:
    """Each neuron model with the populations that use it, e.g. ``atrlif (hidden); cuba_lif (output)``."""
    users: dict[str, list[str]] = {}
    for p in rep["populations"]:
        if p.get("neuron_model"):
            users.setdefault(p["neuron_model"], []).append(p["name"])
    return "; ".join(f"{model} ({', '.join(names)})" for model, names in sorted(users.items())) or "-"


def _core_label(rep: dict, core) -> str:
    if core is None:
        return "-"
    row = next(r for r in rep["cores"] if r["core"] == core)
    return f"core {core}: {pct(row['utilisation_percent'])} of {_label(row['bottleneck'])}"


def _label(resource) -> str:
    return RESOURCE_LABELS.get(resource, str(resource))


def _shown_cores(rep: dict, max_rows: int | None) -> list[dict]:
    """Busiest first; when cut, the emptiest core is always kept so both highlights show."""
    rows = sorted(rep["cores"], key=lambda r: (-r["utilisation_percent"], r["core"]))
    if max_rows is None or len(rows) <= max_rows:
        return rows
    return rows[:max_rows - 1] + [rows[-1]]


def cores_table(rep: dict, max_rows: int | None = None) -> TableSpec:
    limits = rep["limits"]
    shown = _shown_cores(rep, max_rows)
    note = "" if len(shown) == len(rep["cores"]) else f"busiest {len(shown) - 1} and the emptiest of " \
                                                       f"{len(rep['cores'])} cores; all are in --json"
    t = TableSpec("cores-table", "cores (used/limit, %; busiest first; binding resource: the one the core is "
                  "fullest in)",
                  ["core", "chip", "position", "neurons held", *(_label(r) for r in limits), "synapses",
                   "utilisation", "binding resource"], note=note)
    s = rep["core_summary"]
    styles = {s["emptiest"]: "emptiest", s["busiest"]: "busiest"}  # one core both: it reads as busiest
    for r in shown:
        t.add([r["core"], r["chip"], f"({r['position'][0]}, {r['position'][1]})", "\n".join(r["neuron_ranges"]),
               *(used_of(r["resources"][k]) for k in limits), num(r["synapses"]),
               pct(r["utilisation_percent"]), _label(r["bottleneck"])],
              styles.get(r["core"]))
    return t


def core_count_table(rep: dict) -> TableSpec:
    c = rep["core_count"]
    per = c.get("lower_bound_per_resource", {})
    t = TableSpec("core-count-table", f"why {c['cores']} cores (lower bound {c['lower_bound']})",
                  ["", ""], note="lower bound per resource: " + ", ".join(
                      f"{_label(r)} {num(v)}" for r, v in per.items() if r != "cores"))
    for reason in c["reasons"]:
        t.add(["why", reason])
    for way in c["lower_it"]:
        t.add(["what would lower it", way])
    return t


def mappers_table(rep: dict) -> TableSpec | None:
    m = rep["mapping"]
    candidates = m.get("mapper_candidates")
    if not candidates:
        return None
    t = TableSpec("mappers-table", "mappers --mapper auto tried", ["mapper", "violating cores", "chips", "cores",
                                                                   "inter-core traffic", "hop-weighted traffic",
                                                                   "kept"],
                  note="kept by: " + ", then ".join(m.get("mapper_cost_order", [])))
    for name, cost in candidates.items():
        t.add([name, num(cost["violating_cores"]), num(cost["chips"]), num(cost["cores"]),
               num(cost["intercore_traffic"]), num(cost["hop_weighted_traffic"]),
               "yes" if name == m.get("mapper_chosen") else ""])
    return t


def quantization_table(rep: dict) -> TableSpec:
    t = TableSpec("quantization-table", "quantization per layer (weights into the layer)",
                  ["layer", "projection", "synapses", "weight exp", "sign", "clipped", "rounded to 0",
                   "mantissa range used", "rms rel. error", "max abs. error"])
    for layer in rep["layers"]:
        for p in layer["projections"]:
            lo, hi = p["mantissa_limits"]
            t.add([layer["layer"], p["name"], num(p["synapses"]), p["weight_exp"], p["sign_mode"],
                   count_of(p["clipped"], p["synapses"], p["clipped_fraction"]),
                   count_of(p["zeroed"], p["synapses"], p["zeroed_fraction"]),
                   f"{p['mantissa_min']}..{p['mantissa_max']} of {lo}..{hi} ({pct(100 * p['mantissa_range_used'])})",
                   pct(None if p["rms_rel_error"] is None else 100 * p["rms_rel_error"]), num(p["max_abs_error"])])
    return t


def params_table(rep: dict) -> TableSpec:
    t = TableSpec("params-table", "neuron parameter conversions (float -> fixed point)",
                  ["layer", "population", "parameter", "lost precision", "max abs. error", "max rel. error",
                   "neurons clipped"])
    for layer in rep["layers"]:
        for p in layer["params"]:
            t.add([layer["layer"], p["population"], p["param"], "yes" if p.get("lost_precision") else "no",
                   num(p.get("max_abs_error")), num(p.get("max_rel_error")), num(p.get("n_clipped"))],
                  "warn" if p.get("lost_precision") else None)
    return t


def traffic_totals_table(rep: dict) -> TableSpec:
    tr = rep["traffic"]
    s, m = tr["static"], tr["measured"]
    t = TableSpec("traffic-totals", "inter-core traffic totals", ["quantity", "static (synapses)", "measured"],
                  note="" if m else "pass --activity RUN for measured traffic")
    t.add(["inter-core", num(s["intercore_synapses"]), num(m["intercore_messages"]) + " messages" if m else "-"])
    t.add(["inter-core presynaptic neurons (axons)", num(s["intercore_axons"]), "-"])
    t.add(["within a core", num(s["local_synapses"]), num(m["local_messages"]) + " messages" if m else "-"])
    t.add(["inter-core synaptic events", "-", num(m["intercore_synaptic_events"]) if m else "-"])
    t.add(["hop-weighted", num(s["hop_weighted_synapses"]), num(m["hop_weighted_messages"]) + " message-hops"
           if m else "-"])
    if m:
        t.add(["run", "-", f"{m['samples']} sample(s) x {m['steps']} steps"])
    return t


def traffic_edges_table(rep: dict, max_rows: int | None = None) -> TableSpec:
    edges = rep["traffic"]["edges"]
    measured = rep["traffic"]["measured"] is not None
    shown = edges if max_rows is None else edges[:max_rows]
    cols = ["from core", "to core", "hops", "synapses", "axons"] + (["messages", "synaptic events"] if measured else [])
    t = TableSpec("traffic-edges", "inter-core links (heaviest hop-weighted first)", cols,
                  note="" if len(shown) == len(edges) else f"{len(shown)} of {len(edges)} links; all are in --json")
    for e in shown:
        t.add([e["src"], e["dst"], e["hops"], num(e["synapses"]), num(e["axons"])]
              + ([num(e["messages"]), num(e["synaptic_events"])] if measured else []))
    return t


def traffic_matrix_table(rep: dict, key: str, part: str) -> TableSpec | None:
    tr = rep["traffic"]
    data = (tr[part] or {}).get(key)
    if data is None or tr["n_cores"] > MATRIX_MAX_CORES:
        return None
    n = tr["n_cores"]
    t = TableSpec(f"traffic-matrix-{key}", f"{part} {key.replace('_', ' ')}: row = from core, column = to core "
                  "(diagonal: within the core)", ["from \\ to", *map(str, range(n))])
    for a in range(n):
        t.add([a, *(num(v) for v in data[a])])
    return t


def activity_table(rep: dict) -> TableSpec | None:
    act = rep["activity"]
    if act is None:
        return None
    t = TableSpec("activity-table", f"activity ({act['backend']} run, {act['samples']} sample(s) x {act['steps']} "
                  "steps)", ["population", "layer", "kind", "neurons", "spikes", "rate (spikes/neuron/step)",
                              "max rate", "silent neurons"])
    for p in act["populations"]:
        t.add([p["population"], p["layer"], p["kind"], num(p["neurons"]), num(p["spikes"]), f"{p['rate']:.4f}",
               f"{p['max_rate']:.4f}", num(p["silent_neurons"])])
    return t


def cost_tables(rep: dict) -> list[TableSpec]:
    c = rep["cost"]
    if c is None:
        return []
    ops = TableSpec("cost-operations", "ESTIMATED cost per inference, by operation",
                    ["operation", "count / inference", "count / step", "pJ each", "ns each", "energy / inference (pJ)"])
    for name, o in c["operations"].items():
        ops.add([name.replace("_", " "), num(o["count_per_inference"]), num(o["count_per_step"]),
                 num(o["energy_pj_each"]), num(o["time_ns_each"]), num(o["energy_pj_per_inference"])])
    tot = TableSpec("cost-totals", "ESTIMATED totals", ["", "per inference", "per step"],
                    note=f"energy: {c['sources']['energy']}; time: {c['sources']['time']}"
                         + (" (figures marked uncertain)" if c["sources"]["energy_uncertain"]
                            or c["sources"]["time_uncertain"] else ""))
    inf, step = c["per_inference"], c["per_step"]
    tot.add(["energy (nJ)", num(inf["energy_pj"] / 1e3), num(step["energy_pj"] / 1e3)])
    tot.add(["time, busiest core per step (us)", num(inf["time_ns"] / 1e3), num(step["time_ns"] / 1e3)])
    tot.add(["time, all operations serial (us)", num(inf["serial_time_ns"] / 1e3), num(step["serial_time_ns"] / 1e3)])
    return [ops, tot]


def sources_table(rep: dict) -> TableSpec:
    t = TableSpec("sources-table", "where the target's figures come from", ["section", "source", "uncertain"])
    for s in rep["sources"]:
        t.add([s["section"], s["source"], UNCERTAIN.get(s["uncertain"], str(s["uncertain"]))])
    return t


def warnings_table(rep: dict) -> TableSpec | None:
    if not rep["warnings"]:
        return None
    t = TableSpec("warnings-table", "compiler warnings", ["rule", "where", "message", "fix"])
    for w in rep["warnings"]:
        t.add([w.get("rule", ""), w.get("where", ""), w.get("message", ""), w.get("fix", "")], "warn")
    return t


def sections(rep: dict, max_rows: int | None = None, max_links: int | None = None
             ) -> list[tuple[str, str, list[TableSpec]]]:
    """(section id, heading, tables) in report order; absent parts (no activity) are left out.

    ``max_rows`` cuts the per-core table, ``max_links`` (default: ``max_rows``) the per-link one.
    """
    max_links = max_rows if max_links is None else max_links
    traffic = [traffic_totals_table(rep), traffic_edges_table(rep, max_links),
               traffic_matrix_table(rep, "synapses", "static"), traffic_matrix_table(rep, "messages", "measured")]
    out = [("summary", "Summary", [summary_table(rep), warnings_table(rep)]),
           ("why-cores", f"Why {rep['core_count']['cores']} cores", [core_count_table(rep), mappers_table(rep)]),
           ("cores", "Cores", [cores_table(rep, max_rows)]),
           ("quantization", "Quantization", [quantization_table(rep), params_table(rep)]),
           ("traffic", "Traffic", traffic),
           ("cost", "Cost estimate", cost_tables(rep)),
           ("activity", "Activity", [activity_table(rep)]),
           ("sources", "Sources", [sources_table(rep)])]
    return [(sid, head, [t for t in tables if t is not None]) for sid, head, tables in out]

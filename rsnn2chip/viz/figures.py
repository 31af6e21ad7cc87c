"""Pictures of a report: the chip mesh, what each core holds, traffic, and a run's activity.

Figures are built on ``matplotlib.figure.Figure`` with an Agg canvas attached,
never through ``pyplot``, so rendering needs no display, keeps no global
state and works the same in a notebook. Every function takes the report dict
(``rsnn2chip.report.build``), so the pictures show the numbers the tables do.
"""
from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator
from matplotlib.patches import FancyArrowPatch, Patch, Rectangle

from rsnn2chip.fileio import atomic_write_bytes as write_file

EMPTY = "#e8e8e8"
HIGHLIGHT = {"busiest": "#d62728", "emptiest": "#1f77b4"}
MAX_ARROWS = 150  # more arrows than this are unreadable; the heaviest are drawn
MAX_MOTIF_SQUARES = 64  # per core; beyond it a core's contents are drawn as stripes
MAX_RASTER_NEURONS = 512


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _geometry(rep: dict) -> tuple[int, int, int]:
    rows, cols = rep["mapping"]["mesh"]
    return rows, cols, max(rep["mapping"]["chips_used"], 1)


def _xy(chip: int, row: int, col: int, cols: int) -> tuple[float, float]:
    """Chips side by side, one empty column between them; row 0 at the top."""
    return chip * (cols + 1) + col, -row


def _mesh_axes(fig: Figure, rep: dict):
    rows, cols, chips = _geometry(rep)
    ax = fig.add_subplot()
    per_chip = rep["mapping"]["cores_per_chip"]
    for chip in range(chips):
        for k in range(per_chip):
            r, c = divmod(k, cols)
            x, y = _xy(chip, r, c, cols)
            ax.add_patch(Rectangle((x - 0.45, y - 0.45), 0.9, 0.9, facecolor=EMPTY, edgecolor="none"))
    ax.set_xlim(-0.7, chips * (cols + 1) - 1.3)
    ax.set_ylim(-rows + 0.3, 0.7)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    return ax


def _core_xy(rep: dict) -> dict[int, tuple[float, float]]:
    cols = rep["mapping"]["mesh"][1]
    return {r["core"]: _xy(r["chip"], r["position"][0], r["position"][1], cols) for r in rep["cores"]}


def _size(rep: dict) -> tuple[float, float]:
    rows, cols, chips = _geometry(rep)
    return min(4 + 0.55 * chips * (cols + 1), 18), min(2.2 + 0.55 * rows, 12)


def _outline(ax, x, y, style: str) -> None:
    ax.add_patch(Rectangle((x - 0.47, y - 0.47), 0.94, 0.94, fill=False, edgecolor=HIGHLIGHT[style], linewidth=2.5))


def mesh_utilisation(rep: dict) -> Figure:
    fig = new_figure(*_size(rep))
    ax = _mesh_axes(fig, rep)
    norm, cmap = Normalize(0, 100), colormaps["YlOrRd"]
    xy = _core_xy(rep)
    few = len(rep["cores"]) <= 160
    for r in rep["cores"]:
        x, y = xy[r["core"]]
        u = r["utilisation_percent"]
        ax.add_patch(Rectangle((x - 0.45, y - 0.45), 0.9, 0.9, facecolor=cmap(norm(min(u, 100))), edgecolor="white"))
        if few:
            ax.text(x, y, f"{r['core']}\n{u:.0f}%", ha="center", va="center", fontsize=7,
                    color="white" if u > 60 else "black")
    s = rep["core_summary"]
    for style in ("emptiest", "busiest"):  # busiest last: when one core is both, red shows
        if s[style] is not None:
            _outline(ax, *xy[s[style]], style)
    fig.colorbar(_mappable(norm, cmap), ax=ax, shrink=0.8, label="utilisation of the most used resource (%)")
    ax.set_title(f"{rep['network']} on {rep['target']}: per-core utilisation ({_highlights(rep)}; grey: unused)")
    return fig


def _highlights(rep: dict) -> str:
    s = rep["core_summary"]
    util = {r["utilisation_percent"] for r in rep["cores"]}
    if len(util) <= 1:
        return "every core equally used"
    return f"red frame: busiest core {s['busiest']}, blue: emptiest {s['emptiest']}"


def _mappable(norm, cmap) -> ScalarMappable:
    return ScalarMappable(norm=norm, cmap=cmap)


def layer_colors(rep: dict) -> dict[str, tuple]:
    layers = [p["layer"] for p in rep["populations"] if p["kind"] == "lif"]
    layers = list(dict.fromkeys(layers))
    cmap = colormaps["tab10" if len(layers) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(layers)}


def _units(rep: dict, core: dict) -> list[tuple[str, int]]:
    """(layer, neurons) of every motif (or neuron of a motif-less population) on a core, in order."""
    pops = {p["name"]: p for p in rep["populations"]}
    out = []
    for name, lo, hi in core["slices"]:
        step = pops[name]["motif_size"] or 1
        out += [(pops[name]["layer"], min(step, hi - k)) for k in range(lo, hi, step)]
    return out


def _draw_squares(ax, x, y, units, colors) -> None:
    side = int(np.ceil(np.sqrt(len(units))))
    cell = 0.9 / side
    for i, (layer, _) in enumerate(units):
        r, c = divmod(i, side)
        ax.add_patch(Rectangle((x - 0.45 + c * cell, y + 0.45 - (r + 1) * cell), cell, cell,
                               facecolor=colors[layer], edgecolor="white", linewidth=0.6))


def _draw_stripes(ax, x, y, units, colors) -> None:
    total = sum(n for _, n in units) or 1
    top = y + 0.45
    shares: dict[str, int] = {}
    for layer, n in units:
        shares[layer] = shares.get(layer, 0) + n
    for layer, n in shares.items():
        h = 0.9 * n / total
        ax.add_patch(Rectangle((x - 0.45, top - h), 0.9, h, facecolor=colors[layer], edgecolor="none"))
        top -= h


def core_layers(rep: dict) -> Figure:
    fig = new_figure(*_size(rep))
    ax = _mesh_axes(fig, rep)
    colors = layer_colors(rep)
    xy = _core_xy(rep)
    for core in rep["cores"]:
        units = _units(rep, core)
        draw = _draw_squares if len(units) <= MAX_MOTIF_SQUARES else _draw_stripes
        draw(ax, *xy[core["core"]], units, colors)
    ax.legend(handles=[Patch(facecolor=c, label=name) for name, c in colors.items()], loc="upper left",
              bbox_to_anchor=(1.01, 1), title="layer", fontsize=8)
    ax.set_title(f"{_unit_words(rep)} on each core, coloured by layer ({_unit_words(rep, one=True)}; stripes "
                 f"where a core holds more than {MAX_MOTIF_SQUARES})")
    return fig


def _unit_words(rep: dict, one: bool = False) -> str:
    """What a square stands for: motifs, neurons, or both when only some populations have motifs."""
    lif = [p for p in rep["populations"] if p["kind"] == "lif"]
    with_motifs = sum(1 for p in lif if p["motif_size"])
    if with_motifs == len(lif) and lif:
        return "one square per motif" if one else "motifs"
    if with_motifs == 0:
        return "one square per neuron" if one else "neurons"
    return "one square per motif, or per neuron where a layer has no motifs" if one else "motifs and neurons"


def traffic_heatmap(rep: dict) -> Figure:
    """Core x core traffic as a matrix: readable at any core count, unlike arrows on the mesh."""
    tr = rep["traffic"]
    measured = tr["measured"] is not None
    key = "messages" if measured else "synapses"
    n = tr["n_cores"]
    m = np.zeros((n, n))
    for e in tr["edges"]:
        m[e["src"], e["dst"]] = e[key]
    side = min(4.0 + 0.18 * n, 14.0)
    fig = new_figure(side + 1.6, side)
    ax = fig.add_subplot()
    top = max(float(m.max()), 1.0)
    shown = np.ma.masked_equal(m, 0)
    image = ax.imshow(shown, cmap=colormaps["viridis"], norm=LogNorm(vmin=1, vmax=max(top, 2.0)),
                      interpolation="nearest", origin="upper")
    ax.set_facecolor("#f4f4f4")
    step = max(1, int(np.ceil(n / 24)))
    ticks = np.arange(0, n, step)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.tick_params(labelsize=7)
    per_chip = rep["mapping"]["cores_per_chip"]
    chips = {r["core"]: r["chip"] for r in rep["cores"]}
    for c in range(1, n):  # chip boundaries, where the core numbering crosses to the next chip
        if chips.get(c) != chips.get(c - 1):
            ax.axhline(c - 0.5, color="#d62728", linewidth=1)
            ax.axvline(c - 0.5, color="#d62728", linewidth=1)
    ax.set_xlabel("to core")
    ax.set_ylabel("from core")
    what = "spike messages in the run" if measured else "synapses"
    bar = fig.colorbar(image, ax=ax, shrink=0.8, label=f"{what} per link (log scale; blank: none)")
    plain_numbers = FuncFormatter(lambda v, _: f"{v:g}")
    bar.ax.yaxis.set_major_formatter(plain_numbers)
    bar.ax.yaxis.set_minor_formatter(plain_numbers)
    chip_note = f"; red lines: chip boundaries ({per_chip} cores per chip)" if len(set(chips.values())) > 1 else ""
    ax.set_title(f"inter-core traffic, {n} cores: row = from, column = to ({what}{chip_note})", fontsize=10)
    return fig


def traffic_arrows(rep: dict) -> Figure:
    fig = new_figure(*_size(rep))
    ax = _mesh_axes(fig, rep)
    xy = _core_xy(rep)
    for x, y in xy.values():
        ax.add_patch(Rectangle((x - 0.3, y - 0.3), 0.6, 0.6, facecolor="#bbbbbb", edgecolor="none"))
    measured = rep["traffic"]["measured"] is not None
    key = "messages" if measured else "synapses"
    edges = [e for e in rep["traffic"]["edges"] if e[key] > 0][:MAX_ARROWS]
    top = max((e[key] for e in edges), default=1)
    cmap = colormaps["viridis"]
    for e in sorted(edges, key=lambda e: e[key]):
        w = e[key] / top
        ax.add_patch(FancyArrowPatch(xy[e["src"]], xy[e["dst"]], connectionstyle="arc3,rad=0.2",
                                     arrowstyle="-|>", mutation_scale=6 + 8 * w, linewidth=0.5 + 3.5 * w,
                                     color=cmap(0.15 + 0.85 * w), alpha=0.85, shrinkA=6, shrinkB=6))
    for core, (x, y) in xy.items():
        ax.text(x, y, str(core), ha="center", va="center", fontsize=7)
    fig.colorbar(_mappable(Normalize(0, top), cmap), ax=ax, shrink=0.8,
                 label=f"{'spike messages in the run' if measured else 'synapses'} per link")
    shown = "" if len(edges) == len(rep["traffic"]["edges"]) else f", heaviest {len(edges)} links"
    ax.set_title(f"inter-core traffic ({'measured spike messages' if measured else 'static synapse counts'}{shown})")
    return fig


def activity_raster(rep: dict, act) -> Figure:
    """One row per population: raster of sample 0 and histogram of per-neuron firing rates."""
    pops = [p for p in rep["populations"] if p["name"] in act.spikes]
    fig = new_figure(11, 2.2 * len(pops) + 0.6)
    axes = fig.subplots(len(pops), 2, squeeze=False, width_ratios=[3, 1])
    for (ax_r, ax_h), p in zip(axes, pops):
        s = act.spikes[p["name"]]
        t, n = np.nonzero(s[0, :, :MAX_RASTER_NEURONS])
        # rasterized: an SVG of thousands of spikes as vectors would be megabytes
        ax_r.scatter(t, n, s=12, marker="|", linewidths=0.9, color="black", rasterized=True)
        ax_r.set_xlim(-0.5, act.steps - 0.5)
        ax_r.set_ylim(-0.5, min(p["neurons"], MAX_RASTER_NEURONS) - 0.5)
        ax_r.set_ylabel(f"{p['name']}\nneuron")
        rates = s.sum(axis=(0, 1)) / max(act.batch * act.steps, 1)
        ax_h.hist(rates, bins=20, range=(0, max(float(rates.max(initial=0)), 1e-3)), color="#4c72b0")
        ax_h.set_xlabel("rate (spikes/neuron/step)")
        ax_h.set_ylabel("neurons")
        ax_h.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1][0].set_xlabel("time step (sample 0)")
    fig.suptitle(f"activity: {act.backend or 'run'}, {act.batch} sample(s) x {act.steps} steps")
    return fig


def figures(rep: dict, act=None) -> dict[str, Figure]:
    """Every picture the report has: name -> figure (activity only with a run)."""
    out = {"mesh": mesh_utilisation(rep), "layers": core_layers(rep), "traffic": traffic_arrows(rep),
           "traffic_matrix": traffic_heatmap(rep)}
    if act is not None:
        out["activity"] = activity_raster(rep, act)
    return out


def save(figs: dict[str, Figure], out_dir: Path, formats=("png", "svg")) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figs.items():
        for fmt in formats:
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, dpi=110)
            path = out_dir / f"{name}.{fmt}"
            write_file(path, buf.getvalue())
            paths.append(path)
    return paths


def png_base64(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return base64.b64encode(buf.getvalue()).decode("ascii")

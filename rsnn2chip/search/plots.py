"""Pictures of a search: alpha matrices over time, the chosen motif as a graph, firing rates over time.

Built on ``matplotlib.figure.Figure`` with an Agg canvas (no pyplot, no display, no global state), like
``rsnn2chip.viz.figures``. Inputs are the JSON-lines log (``search_log.jsonl``) and the discrete arch.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle

EXC, INH = "#d62728", "#1f77b4"
SNAPSHOTS = 6


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: Path) -> str:
    fig.savefig(path, format="png")
    return path.name


def expected_types(type_probs: list, k: int) -> np.ndarray:
    """``(rows, k)`` E[type] = P(exc) - P(inh): the k intra rows, then the 2 lateral rows (motif layers)."""
    probs = np.asarray(type_probs, np.float64)
    signed = probs[:, 0] - probs[:, 1]
    # The unstructured control logs only its k x k pairs (the whole layer is one "motif").
    return signed.reshape(k, k) if signed.size == k * k else signed.reshape(k + 2, k)


def plot_alpha_heatmaps(records: list[dict], layer: str, path: Path, chosen: int) -> str | None:
    """Motif-size probabilities over steps, and snapshots of the chosen candidate's expected types."""
    steps = [r for r in records if r.get("kind") == "step" and layer in r.get("alpha", {})]
    if not steps:
        return None
    candidates = steps[-1]["alpha"][layer]["candidates"]
    size_probs = np.array([r["alpha"][layer]["size_probs"] for r in steps]).T
    picks = sorted(set(np.linspace(0, len(steps) - 1, min(SNAPSHOTS, len(steps))).round().astype(int)))
    fig = new_figure(2.3 * len(picks) + 1.5, 6.2)
    grid = fig.add_gridspec(2, len(picks), height_ratios=(1, 2.2))
    ax = fig.add_subplot(grid[0, :])
    image = ax.imshow(size_probs, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest",
                      extent=(steps[0]["step"], steps[-1]["step"], len(candidates) - 0.5, -0.5))
    ax.set_yticks(range(len(candidates)), [f"k={k}" for k in candidates])
    ax.set_xlabel("search step")
    ax.set_title(f"{layer}: softmax(alpha_size) over the search (chosen k={chosen})")
    fig.colorbar(image, ax=ax, label="probability")
    for column, i in enumerate(picks):
        record = steps[i]
        matrix = expected_types(record["alpha"][layer]["type_probs"][str(chosen)], chosen)
        sub = fig.add_subplot(grid[1, column])
        shown = sub.imshow(matrix, cmap="bwr", vmin=-1, vmax=1, interpolation="nearest")
        if matrix.shape[0] == chosen + 2:
            sub.axhline(chosen - 0.5, color="black", lw=1)
        sub.set_title(f"step {record['step']}", fontsize=9)
        sub.set_xlabel("pre", fontsize=8)
        if column == 0:
            sub.set_ylabel("post (last 2 rows: links to m+1, m-1)" if matrix.shape[0] == chosen + 2 else "post",
                           fontsize=8)
        sub.tick_params(labelsize=7)
    fig.colorbar(shown, ax=fig.axes[-1], label="P(exc) - P(inh)")
    return save(fig, path)


def plot_motif(cfg: dict, path: Path) -> str | None:
    """The chosen motif as a directed graph: motif m with its intra synapses, links to motifs m-1 and m+1."""
    if cfg.get("type") != "scml":
        return None
    k, size = cfg["motif_size"], cfg["size"]
    intra, inter = np.asarray(cfg["intra_types"]), np.asarray(cfg["inter_types"])
    lateral = size // k > 1 and k < size
    fig = new_figure(9 if lateral else 6, 5.5)
    ax = fig.add_subplot()
    radius = 1.0
    angles = 2 * math.pi * np.arange(k) / k + math.pi / 2
    centre = {0: (0.0, 0.0), 1: (3.2, 0.0), -1: (-3.2, 0.0)} if lateral else {0: (0.0, 0.0)}
    positions = {(m, i): (cx + radius * math.cos(a), cy + radius * math.sin(a))
                 for m, (cx, cy) in centre.items() for i, a in enumerate(angles)}
    for (m, i), (x, y) in positions.items():
        ax.scatter([x], [y], s=300 if k <= 16 else 60, color="white" if m else "#f2f2f2", edgecolor="black",
                   zorder=3, alpha=1.0 if m == 0 else 0.6)
        if k <= 16:
            ax.text(x, y, str(i), ha="center", va="center", fontsize=8, zorder=4)
    for (m, label) in ((0, "motif m"), (1, "motif m+1"), (-1, "motif m-1")):
        if m in centre:
            ax.text(centre[m][0], centre[m][1] - 1.55, label, ha="center", fontsize=10)

    def arrow(a, b, sign, alpha=0.9):
        color = EXC if sign > 0 else INH
        (x0, y0), (x1, y1) = a, b
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=2,
                    arrowprops=dict(arrowstyle="-|>", color=color, lw=1.2, alpha=alpha, shrinkA=9, shrinkB=9,
                                    connectionstyle="arc3,rad=0.15"))

    for post in range(k):
        for pre in range(k):
            sign = intra[post, pre]
            if not sign:
                continue
            if post == pre:
                x, y = positions[(0, post)]
                ax.add_patch(Circle((x * 1.25, y * 1.25), 0.13, fill=False, color=EXC if sign > 0 else INH, lw=1.2))
            else:
                arrow(positions[(0, pre)], positions[(0, post)], sign)
    if lateral:
        rows = ((0, 1), (1, -1)) if size // k > 2 else ((0, 1),)
        for row, step in rows:
            for i in range(k):
                if inter[row, i]:
                    arrow(positions[(0, i)], positions[(step, i)], inter[row, i], alpha=0.6)
    n_syn = int(np.count_nonzero(intra)) + (int(np.count_nonzero(inter[0])) if lateral else 0) \
        + (int(np.count_nonzero(inter[1])) if lateral and size // k > 2 else 0)
    ax.set_title(f"{cfg['name']}: motif of {k} neurons x {size // k} motifs, {n_syn} synapses per motif")
    ax.legend(handles=[Line2D([], [], color=EXC, label="excitatory"), Line2D([], [], color=INH, label="inhibitory")],
              loc="upper right", fontsize=8)
    ax.set_aspect("equal")
    ax.axis("off")
    return save(fig, path)


def plot_rates(records: list[dict], path: Path) -> str | None:
    """Per hidden layer over the search: mean firing rate, distance to the target, intrinsic parameters;
    and the stability probe (accuracy before / after each probed alpha step / after IP)."""
    steps = [r for r in records if r.get("kind") == "step"]
    probes = [r for r in records if r.get("kind") == "probe"]
    if not steps:
        return None
    fig = new_figure(12, 7)
    axes = fig.subplots(2, 2)
    x = [r["step"] for r in steps]
    for name in steps[-1]["rates"]:
        axes[0, 0].plot(x, [(r["rates"].get(name) or {}).get("mean") for r in steps], label=name)
        axes[0, 1].plot(x, [(r["rates"].get(name) or {}).get("w1") for r in steps], label=name)
    decay_axis = axes[1, 0].twinx() if steps[-1].get("intrinsic") else None
    for name in steps[-1].get("intrinsic", {}):
        axes[1, 0].plot(x, [r["intrinsic"][name]["input_gain"] for r in steps], "--", label=f"{name} input_gain")
        decay_axis.plot(x, [r["intrinsic"][name]["voltage_decay"] for r in steps], ":", color="black",
                        label=f"{name} voltage_decay (right axis)")
    if decay_axis is not None:
        decay_axis.legend(fontsize=8, loc="lower right")
    axes[0, 0].set_title("mean firing rate (spikes/step, train batches)")
    axes[0, 1].set_title("W1 distance of rates to the target exponential")
    axes[1, 0].set_title("intrinsic parameters (layer mean)")
    if probes:
        px = [p["step"] for p in probes]
        for key, style in (("before", "-"), ("after_alpha", ":"), ("after_ip", "--")):
            axes[1, 1].plot(px, [p[key]["accuracy"] for p in probes], style, label=key)
        axes[1, 1].set_title("probe accuracy around alpha steps")
    for ax in axes.flat:
        ax.set_xlabel("search step")
        if ax.lines:
            ax.legend(fontsize=8)
    return save(fig, path)


def plot_run(out_dir: Path, records: list[dict], arch: dict, searched: list[str]) -> list[str]:
    """Every picture of one run; returns the file names written."""
    written = []
    for cfg in arch["layers"]:
        if cfg["name"] in searched:
            written.append(plot_alpha_heatmaps(records, cfg["name"], out_dir / f"alpha_{cfg['name']}.png",
                                               cfg["motif_size"]))
            written.append(plot_motif(cfg, out_dir / f"motif_{cfg['name']}.png"))
    written.append(plot_rates(records, out_dir / "rates.png"))
    return [name for name in written if name]

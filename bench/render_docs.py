"""Render docs/benchmarks.md from the JSON results the benchmark scripts wrote.

Every figure in docs/benchmarks.md comes from bench/results/*.json through this
script, so the document cannot quote a number a script did not produce.

    .venv/bin/python bench/render_docs.py            # rewrites docs/benchmarks.md
"""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


PRODUCERS = {"sim_speed": "bench/sim_speed.py", "mapping": "bench/mapping.py", "accuracy": "bench/accuracy.py",
             "accuracy_init1": "bench/accuracy.py",
             "deploy_fidelity": "bench/deploy_fidelity.py", "hrmas": "bench/hrmas.py",
             "hrmas_fmnist-rows": "bench/hrmas.py --datasets fmnist-rows ... (docs/hrmas.md)",
             "hrmas_512": "bench/hrmas.py --sizes 512 ... (docs/hrmas.md)", "softlif": "bench/softlif.py"}


def load(name: str) -> dict:
    """A section's results; a missing file stops the rendering (a silently dropped section reads as 'not run')."""
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"render_docs: {path.relative_to(ROOT)} is missing; run `.venv/bin/python "
                         f"{PRODUCERS.get(name, 'the benchmark')}` first (docs/benchmarks.md was not rewritten)")
    return json.loads(path.read_text())


def span(values, fmt="{:.2f}") -> str:
    lo, hi = min(values), max(values)
    return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)} to {fmt.format(hi)}"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def sim_speed(d: dict) -> str:
    rows = [[r["neurons"], r["lava_processes"], f"{r['lava_steps_per_s']:.0f}", f"{r['reference_steps_per_s']:.0f}",
             f"{r['speedup_single']:.1f}x", f"{r['reference_batched_sample_steps_per_s']:.0f}",
             f"{r['speedup_batched']:.1f}x", f"{r['batch_gain']:.1f}x",
             f"{r['reference_step_us']:.1f}", f"{r['reference_batched_sample_step_us']:.1f}",
             f"{r['batch_gain_per_step']:.1f}x",
             "yes" if r["identical"] else "NO"] for r in d["rows"]]
    return "\n".join([
        "## Reference backend beside Lava", "",
        "Same compiled network (input 16 -> recurrent N -> readout 10, random weights), same input, one sample "
        "in Lava (`Loihi2SimCfg`, `fixed_pt`; wall time includes building the processes) and in the reference "
        f"backend; batched: {d['batch']} samples at once in the reference. Each figure is the best of "
        f"{d['repeats']} runs, the kinds of run taking turns, with a pause of {d['lava_settle_s']:g} s after each "
        "Lava run (the run right after one was slowed while the machine settled). The reference's first call in a "
        "process (compiling its kernels, or loading "
        f"them from numba's disk cache) took {d['reference_first_call_s']:.2f} s and is not in "
        "the table. The batch gain is batched sample-steps/s over one sample's steps/s, each run's preparation "
        "(stacking the weights, paid once a run) included. The reference also ran twice as many steps: the "
        "difference is the cost of a step alone, in microseconds per sample-step, and its ratio the batch gain "
        "per step. That gain is smaller at 1,034 neurons because there a batch saves only the per-call overhead: "
        "it sums each sample's senders in turn, the same work per sample (docs/backends.md). On this shared "
        "2-core machine the figures at 1,034 neurons, one sample and batched alike, vary up to twofold from one "
        "run of the script to the next (in separate processes, not between the repeats of one), and the batch "
        "gain with them.", "",
        f"Command: `.venv/bin/{d['command']}`", "",
        table(["neurons", "Lava processes", "Lava steps/s", "reference steps/s", "ratio", "reference batched "
               "sample-steps/s", "ratio", "batch gain", "us a step, one sample", "us a sample-step, batched",
               "batch gain per step", "spikes identical"], rows), ""])


def lava_speed(d: dict) -> str:
    rows = [[r["hidden"], f"{r['netx_steps_per_s']:.0f}", f"{r['ours_steps_per_s']:.0f}", f"**{r['steps_ratio']:.2f}**",
             f"{r['netx_build_s']:.2f}", f"{r['ours_build_s']:.2f}", r["ours_processes"],
             " + ".join(r["ours_synapses"]), f"{r['netx_samples_per_s']:.2f}", f"{r['ours_samples_per_s']:.2f}",
             f"**{r['samples_ratio']:.1f}**", _batch_plan(r.get("ours_batch_plan")),
             "yes" if r["identical_spikes"] and r["samples_identical"] else "NO"]
            for r in d["rows"]]
    first = d["rows"][0]
    return "\n".join([
        "## rsnn2chip's Lava Network beside lava-dl netx", "",
        "slayer CUBA networks 12 -> H -> H (recurrent) -> 9 exported by slayer's `export_hdf5`, run by "
        "`netx.hdf5.Network` and, compiled by rsnn2chip, by `rsnn2chip.lava.Network`, each fed by the same "
        "`RingBuffer` and read by an `Extractor` on `out` (`Loihi2SimCfg`, `fixed_pt`). Steady state: best of "
        f"interleaved runs of {first['steps']} steps after a 20-step warm-up (the build time is process creation, "
        f"compile and those 20 steps). Samples: {first['samples']} samples of {first['sample_steps']} steps, "
        "netx one build per sample (as its user would), ours batched as `eval --backend lava` runs them"
        + (f", best of {first['sample_repeats']} interleaved runs each. " if "sample_repeats" in first else ". ")
        + "Ratios are ours / netx.", "",
        f"Command: `.venv/bin/{d['command']}`"
        + (" (`--resume` kept the rows of earlier runs of `python bench/lava_speed.py`)" if "--resume" in d["command"]
           else ""), "",
        table(["H", "netx steps/s", "ours steps/s", "ratio", "netx build s", "ours build s", "our processes",
               "our synapse kernels", "netx samples/s", "ours samples/s", "ratio", "our batch plan",
               "spikes identical"], rows), ""]
        + _fsdd_eval(d.get("fsdd_eval")))


def _batch_plan(p: dict | None) -> str:
    """A BatchPlan in words (layout.BatchPlan; docs/lava.md, "Batches")."""
    if not p:
        return "-"
    if not p["in_sequence"]:
        return f"{p['replicas']} replicas a build"
    reset = "Reset processes" if p["reset_in_network"] else "Network.reset()"
    return f"rounds of {p['replicas']} replicas in one build, {reset}"


def _fsdd_eval(f: dict | None) -> list[str]:
    if not f:
        return []
    lava, ref = f["lava"], f["reference"]
    return [f"`rsnn2chip eval --backend lava` on the FSDD test split ({lava['samples']} samples, {f['arch']}, "
            f"run with `--fsdd`): **{lava['samples_per_s']:.1f} samples/s** (reference backend "
            f"{ref['samples_per_s']:.0f}); accuracy {lava['accuracy']:.4f} and mean spike rate "
            f"{lava['mean_spike_rate']:.4f}, identical to the reference: "
            f"{'yes' if f['identical_accuracy_and_rates'] else 'NO'}.", ""]


def mapping(d: dict) -> str:
    out = ["## Core mapping at scale", "",
           f"Target: {d['target']}; naive baseline: {d['naive_baseline']}. {d['cpu_count']} CPU cores.", "",
           f"Command: `{d['command']}`", ""]
    rows = []
    for r in d["results"]:
        naive = r["mappers"].get("naive", {})
        for name, m in r["mappers"].items():
            if name == "naive":
                continue
            ratio = m["hop_weighted"] / naive["hop_weighted"] if naive.get("hop_weighted") else None
            metis = r["mappers"].get("metis", {}).get("hop_weighted")
            rows.append([r["family"], r["neurons"], r["synapses"], name, m["cores"], f"{m['cores_over_lb']:.3f}",
                         m["intercore_synapses"], f"{m['hop_weighted']:.3g}", f"{ratio:.3f}" if ratio is not None else "-",
                         f"{m['hop_weighted'] / metis:.3f}" if metis else "-", f"{m['compile_s']:.2f}",
                         len(m["violations"])])
    out.append(table(["network", "neurons", "synapses", "mapper", "cores", "cores/LB", "inter-core synapses",
                      "hop-weighted", "vs naive", "vs METIS", "compile s", "violations"], rows))
    out += ["", "Peak memory and growth:", ""]
    out.append(table(["network", "neurons", "synapses", "compile s (greedy)", "peak RSS MB"],
                     [[r["family"], r["neurons"], r["synapses"], f"{r['compile_s']:.1f}", f"{r['peak_rss_mb']:.0f}"]
                      for r in d["results"] if "peak_rss_mb" in r]))
    scml = [r for r in d["results"] if r["family"] == "scml"]
    worst = max(r["mappers"]["auto"]["cores_over_lb"] for r in scml)
    largest = max(scml, key=lambda r: r["neurons"])
    out += ["", f"Against the targets: cores/LB on SC-ML networks with `auto` is at most {worst:.3f} (target <= 1.05). "
            f"The largest SC-ML network ({largest['neurons']} neurons, {largest['synapses']} synapses) compiled with "
            f"the greedy mapper in {largest['compile_s']:.1f} s at {largest['peak_rss_mb'] / 1024:.2f} GB peak "
            "(targets 60 s, 8 GB); `auto`, which runs every mapper, took "
            f"{largest['mappers']['auto']['compile_s']:.1f} s. " + mapping_reading(d, largest), ""]
    g = d["growth"]
    out += ["", "Compile time grows as synapses^" + ", ".join(
        f"{g[k]['time_exponent_vs_synapses']:.2f} ({k})" for k in g) + "; peak memory as synapses^" + ", ".join(
        f"{g[k]['memory_exponent_vs_synapses']:.2f} ({k})" for k in g) + ".", ""]
    return "\n".join(out)


def mapping_reading(d: dict, largest: dict) -> str:
    """The comparisons the prose states, computed from the results."""
    hop = lambda r, m: r["mappers"][m]["hop_weighted"]  # noqa: E731
    compared = [r for r in d["results"] if hop(r, "naive") > 0]
    below_naive = [r for r in compared if hop(r, "auto") < hop(r, "naive")]
    naive = "everywhere" if len(below_naive) == len(compared) else f"in {len(below_naive)} of {len(compared)} networks"
    scml = [r for r in d["results"] if r["family"] == "scml"]
    beats_metis = [r for r in scml if hop(r, "auto") < hop(r, "metis")]
    if beats_metis:
        ratios = [r["mappers"]["auto"]["intercore_synapses"] / r["mappers"]["metis"]["intercore_synapses"]
                  for r in beats_metis]
        metis = (f"below METIS on the SC-ML networks of {', '.join(str(r['neurons']) for r in beats_metis)} neurons; "
                 f"raw inter-core synapse counts of `auto` are {span(ratios)} times METIS's there (it trades them for "
                 "fewer cores and shorter routes)")
    else:
        metis = "not below METIS on any SC-ML network"
    random = [r["mappers"]["auto"]["cores_over_lb"] for r in d["results"] if r["family"] == "random"]
    text = f"Hop-weighted traffic of `auto` is below the naive packing {naive} and {metis}. "
    if random:
        text += (f"Random graphs reach cores/LB of {span(random)}: they are limited by input axons, which the "
                 "total-demand lower bound cannot see. ")
    return text + (f"Note that our synapse-memory model (192 KB per core, 21 bits per synapse plus axon headers) puts "
                   f"{largest['synapses'] / 1e6:.0f}M synapses on {largest['mappers']['auto']['chips_used']} chips, "
                   "not one: Intel's 120M-synapses-per-chip figure assumes compressed encodings we do not model "
                   "(docs/mapping.md).")


def _ms(stat: dict, scale: float = 1.0, digits: int = 3) -> str:
    if not stat or stat.get("mean") is None:
        return "-"
    return f"{stat['mean'] * scale:.{digits}f} ± {stat['sd'] * scale:.{digits}f}"


HRMAS_CLAIMS = {"hrmas_beats_fc": "HRMAS >= fully-connected RSNN of the same neurons",
                "hrmas_beats_random_sparse": "HRMAS >= random sparse at its synapse count",
                "search_beats_shuffled_types": "searched types >= the same types shuffled",
                "ip_switch": "example space >= the same with IP switched",
                "remedies_help": "annealing + entropy >= neither",
                "reinit_beats_inherit": "fresh weights >= supernet weights at retraining",
                "motifs_beat_unstructured": "motifs >= unstructured search",
                "recurrence_helps_fc": "FC RSNN >= no recurrence (does the data need it?)"}


def hrmas(d: dict) -> str:
    from hrmas import LABELS  # bench/hrmas.py, beside this script (on sys.path as the script's folder)
    datasets = sorted({s["dataset"] for s in d["summary"].values()})
    out = [f"## HRMAS against hand-designed RSNNs: {', '.join(datasets)}", "",
           f"Searches use `{d['space']}` as shipped (only size and seed changed); every network is trained with "
           "the training recipe and tested on the test split; paired by seed. Compute: "
           f"{d['compute_seconds'] / 3600:.1f} core-hours of searching and training on this machine.", "",
           f"Command: `nice .venv/bin/python {d['command']} --resume` (background; `--quick` for a smoke run)", ""]
    for name, s in d["summary"].items():
        rows = []
        for m, r in s["methods"].items():
            drop = r.get("discretisation_drop")
            rows.append([LABELS[m], _ms(r["test_accuracy"]), f"{r['recurrent_synapses']['mean']:.0f}",
                         f"{r['cores']['mean']:.0f}", ",".join(str(k) for k in r["motif_sizes"] if k) or "-",
                         _ms(r["search_cost"], digits=2),
                         "-" if not drop else f"{drop['mean'] * 100:+.1f}",
                         "-" if "entropy" not in r else
                         f"{r['entropy']['types']['mean']:.3f} / {r['entropy']['size']['mean']:.3f}"])
        share = s.get("hrmas_synapse_share_of_fc")
        searched = s["methods"]["hrmas"]
        deployed = (f"; the searched model compiled for loihi2-sim: {_ms(searched['deployed_test_accuracy'])} on the "
                    f"reference backend, Lava == reference on {searched['lava_samples']} test samples: "
                    f"{'yes' if searched['lava_equals_reference'] else 'NO'}" if "lava_samples" in searched else "")
        out += [f"**{name}** (test split {s['splits']['test']}, train {s['splits']['train']}, seeds {s['seeds']})"
                + (f"; HRMAS keeps {share * 100:.1f} % of the FC network's recurrent synapses" if share else "")
                + deployed, "",
                table(["network", "test accuracy", "recurrent synapses", "cores (loihi2-sim)", "motif sizes",
                       "search time / its training", "discretisation drop (pp)", "entropy types / size"], rows), ""]
        claims = [[HRMAS_CLAIMS.get(k, k), f"{c['mean'] * 100:+.2f} pp ± {c['sd'] * 100:.2f}",
                   f"{c['wins']} won, {c['ties']} tied of {c['n']}", "holds" if c["holds"] else "fails"]
                  for k, c in s["claims"].items()]
        out += [table(["claim (paired per seed)", "mean difference", "seeds", "verdict"], claims), ""]
    return "\n".join(out)


def _pct(stat: dict) -> str:
    return f"{stat['mean'] * 100:.2f} ± {stat['std'] * 100:.2f}"


def softlif(d: dict) -> str:
    steps = [str(t) for t in d["protocol"]["steps"]]
    out = ["## Soft-LIF training, spiking deployment", "",
           f"Test error (%), mean ± sd over seeds; spiking = the converted network on the reference backend "
           f"(Loihi fixed point) after T steps at dt = 1 ms. Noise sigma in {d['protocol']['noise_units']}. "
           f"Paper (CIFAR-10): ANN {d['paper_cifar10_percent']['ann']}, soft-LIF {d['paper_cifar10_percent']['softlif_ann']}, "
           f"spiking with sigma=10 {d['paper_cifar10_percent']['spiking_sigma10']}.", "",
           f"Command: `{d['command'].replace('nice ', '').replace(' --resume', '')}` "
           "(Fashion-MNIST needs Debian's dataset-fashion-mnist files, see docs/softlif.md)", ""]
    rows = []
    for dataset, configs in d["summary"].items():
        for name, c in configs.items():
            deploy = c.get("deploy", {}).get("0.001")
            spiking = [(_pct(deploy["spiking_error"][t]) if deploy else "") for t in steps]
            ratio = f"{deploy['spiking_over_ann'][steps[-1]]['mean']:.2f}" if deploy else ""
            rows.append([dataset, name, _pct(c["ann_error"]), *spiking, ratio])
    out.append(table(["dataset", "network", "ANN"] + [f"spiking T={t}" for t in steps]
                     + [f"spiking/ANN at T={steps[-1]}"], rows))
    out += ["", softlif_reading(d) + " Plot: `bench/results/softlif.png`.", ""]
    return "\n".join(out)


def softlif_reading(d: dict) -> str:
    short, last = str(d["protocol"]["steps"][1]), str(d["protocol"]["steps"][-1])
    gaps, effects = [], {short: [], last: []}
    for configs in d["summary"].values():
        deployed = {name: c for name, c in configs.items() if c.get("deploy", {}).get("0.001")}
        for c in deployed.values():
            gaps.append(c["deploy"]["0.001"]["spiking_error"][last]["mean"] - c["ann_error"]["mean"])
        for name, c in deployed.items():
            twin = deployed.get(name.replace("sigma=10", "sigma=0")) if "sigma=10" in name else None
            for t in effects if twin else ():
                noisy, plain = c["deploy"]["0.001"]["spiking_error"][t], twin["deploy"]["0.001"]["spiking_error"][t]
                effects[t].append((plain["mean"] - noisy["mean"], max(noisy["std"], plain["std"])))
    text = f"Reading: after T = {last} steps the spiking error is {span([g * 100 for g in gaps], '{:+.1f}')} pp from its own ANN's."
    if effects[short]:
        def beyond_sd(t):
            return sum(abs(e) > sd for e, sd in effects[t])
        text += (f" Training noise (sigma = 10) lowers the error by {span([e * 100 for e, _ in effects[short]], '{:+.1f}')} "
                 f"pp at T = {short} ({beyond_sd(short)} of {len(effects[short])} configurations beyond the seed sd) "
                 f"and by {span([e * 100 for e, _ in effects[last]], '{:+.1f}')} pp at T = {last} "
                 f"({beyond_sd(last)} of {len(effects[last])} beyond the seed sd).")
    return text


def deploy_fidelity(d: dict) -> str:
    sub = d["lava_subset"]
    rows = [[stage, f"{d['stages'][stage]['accuracy']:.4f}" if stage in d["stages"] else "-",
             f"{sub[stage]['accuracy']:.4f}", f"{sub[stage]['samples_per_s']:.1f}"]
            for stage in ("float", "qat", "reference", "lava")]
    g = d["gaps"]
    return "\n".join([
        "## Deployment fidelity: one trained network, four ways", "",
        f"Network `{d['model']}` (the `make demo` SC-ML network), {d['data']} {d['split']} split, target "
        f"{d['target']}, {d['compile']['cores']} core(s).", "",
        f"Command: `.venv/bin/{d['command']}`", "",
        table(["stage", f"accuracy, all {d['stages']['float']['samples']} samples",
               f"accuracy, first {sub['samples']} samples", "samples/s"], rows), "",
        f"Gaps: float -> QAT {g['float_to_qat'] * 100:+.2f} pp, QAT -> reference {g['qat_to_reference'] * 100:+.2f} pp, "
        f"reference -> Lava on the subset {g['reference_to_lava_on_subset'] * 100:+.2f} pp. " + (
            "QAT runs the reference backend's integer arithmetic, and its measured gap to the reference is 0, as "
            "tests/test_qat.py requires." if g["qat_to_reference"] == 0 else
            "QAT should match the reference exactly; the measured gap is not 0, which tests/test_qat.py forbids: "
            "rerun the benchmark on this version."), ""])


RECIPE_ORDER = ("default", "gru", "lstm", "delta_input", "spike_count", "lr_1e-3", "lr_1e-2", "slope_2", "slope_10",
                "init_0.5", "init_1", "init_2", "scml", "atrlif")


def accuracy(d: dict) -> str:
    """The default training recipe on real temporal data, beside a GRU and an LSTM (bench/accuracy.py)."""
    return accuracy_tables(d, "## Default recipe on real temporal data, against a GRU and an LSTM", (
        "`rsnn2chip train --arch examples/arch/fc_rnn_fsdd.yaml --data D` with every default (128 recurrent "
        "CUBA-LIF neurons, initial weight scale 0.5, graded input, membrane readout, the step budget with early "
        "stopping; docs/training.md), compiled for loihi2-sim; *deployed* is the reference backend on the whole "
        f"test split, and Lava equals it on the first test samples of each run. Anchor: {d['anchor']}. Rows other "
        "than `default`, `gru` and `lstm` change one setting of the default (`init_1`: the previous default, "
        "initial weight scale 1); n is the number of seeds.")) + "\n" + accuracy_reading(d) + "\n"


def accuracy_init1(d: dict) -> str:
    """The ablations run while the default initial weight scale was 1 (bench/accuracy.py at commit b97b088)."""
    return accuracy_tables(d, "## Ablations around the previous default (initial weight scale 1)", (
        "The runs that chose the current defaults, made while `init_scale` defaulted to 1 (commit b97b088; "
        "`default` here is today's `init_1`, and every other row changes one setting of it). Same data, "
        f"recipe and anchors as above. Anchor: {d['anchor']}; n is the number of seeds."))


def accuracy_tables(d: dict, title: str, intro: str) -> str:
    out = [title, "", intro, "",
           "Commands (runs accumulate over invocations with `--resume`): "
           + "; ".join(f"`.venv/bin/python {c}`" for c in d.get("commands", [d["command"]]))
           + (f" ({d['merged']})" if d.get("merged") else ""), ""]
    for dataset, configs in d["summary"].items():
        runs = [r for r in d["runs"] if r["dataset"] == dataset]
        split = runs[0]["splits"]
        rows = []
        for config in [c for c in RECIPE_ORDER if c in configs] + [c for c in configs if c not in RECIPE_ORDER]:
            r = configs[config]
            dep, flt = r["deployed_test_accuracy"], r["float_test_accuracy"]
            lava = [x for x in runs if x["config"] == config and x.get("lava_samples")]
            rows.append([config,
                         f"{dep['mean']:.4f} ± {dep['sd']:.4f} ({dep['n']})" if dep["mean"] is not None else "-",
                         f"{flt['mean']:.4f} ± {flt['sd']:.4f} ({flt['n']})",
                         "-" if r["points_vs_gru"] is None or config == "gru" else f"{r['points_vs_gru']:+.1f}",
                         f"{r['train_samples_per_s']:.0f}",
                         "-" if r["synops_per_sample"] is None else f"{r['synops_per_sample']:,.0f}",
                         ("identical on " + str(sum(x["lava_samples"] for x in lava))) if lava and all(
                             x["lava_equals_reference"] for x in lava) else ("DIFFER" if lava else "-")])
        out += [f"**{dataset}**: {d['datasets'].get(dataset, '')}; train / val / test {split['train']} / "
                f"{split['val']} / {split['test']}", "",
                table(["config", "deployed acc (mean ± sd, n)", "float acc", "pts vs GRU", "train samples/s",
                       "synaptic ops / sample", "Lava == reference"], rows), ""]
    return "\n".join(out)


def accuracy_reading(d: dict) -> str:
    parts = []
    for dataset, configs in d["summary"].items():
        default = configs.get("default")
        if default and default["points_vs_gru"] is not None:
            parts.append(f"{dataset}: default {default['deployed_test_accuracy']['mean']:.3f} deployed, "
                         f"{default['points_vs_gru']:+.1f} points against the GRU")
    return "Reading: " + "; ".join(parts) + ". Samples/s were measured on a shared 2-core machine."


ACCURACY_MODELS = {"scml": "SC-ML (motif 4)", "fc": "FC RSNN", "random_sparse": "random sparse",
                   "self_recurrent": "self-recurrent", "gru": "GRU (non-spiking)"}


def scml_sweep(d: dict) -> str:
    out = ["## Architectures at equal neuron count", "",
           f"Test accuracy, mean ± sd over {len(d['seeds'])} seeds, {max(d['settings']['epochs'].values())} epochs each; recurrent "
           "synapses in brackets (GRU: its 3·N² hidden-to-hidden weights); training samples/s after the slash. "
           f"SC-ML uses the hand-chosen motif of `{d['settings']['scml_arch']}`; random sparse has the SC-ML layer's "
           f"synapse count; GRU readout: {d['settings']['gru_readout']}. events-digits is derived.", "",
           f"Command: `.venv/bin/python {d['command']}` ({d['wall_seconds']:.0f} s)", ""]
    for dataset, sizes in d["summary"].items():
        rows = []
        for size, models in sizes.items():
            rows.append([size] + [f"{m['test_accuracy']['mean']:.3f} ± {m['test_accuracy']['sd']:.3f} "
                                  f"({m['synapses']}) / {m['train_samples_per_s']:.0f}"
                                  for k in ACCURACY_MODELS if (m := models.get(k))])
        out += [f"**{dataset}**", "", table(["neurons"] + [v for k, v in ACCURACY_MODELS.items()
                                                          if k in next(iter(sizes.values()))], rows), ""]
    out += [scml_sweep_reading(d) + " Samples/s were measured on a loaded machine.", ""]
    return "\n".join(out)


def scml_sweep_reading(d: dict) -> str:
    parts = []
    for dataset, sizes in d["summary"].items():
        acc = {size: {k: m["test_accuracy"]["mean"] for k, m in models.items()} for size, models in sizes.items()}
        below_random = [s for s, a in acc.items() if a["scml"] < a["random_sparse"]]
        below_fc = [s for s, a in acc.items() if a["scml"] < a["fc"]]
        spread = [max(a.values()) - min(a.values()) for a in acc.values()]
        parts.append(f"on {dataset}, SC-ML is below the random sparse network of equal synapses at "
                     f"{len(below_random)} of {len(acc)} sizes and below the fully-connected RSNN at {len(below_fc)} "
                     f"of {len(acc)}; the models span {span([x * 100 for x in spread], '{:.1f}')} pp per size")
    return "Reading: " + "; ".join(parts) + "."



def interop(d: dict) -> str:
    rows = []
    for r in d["results"]:
        rows.append([r["framework"], "framework", f"{r['framework_accuracy']:.4f}", "1.000",
                     str(r["framework_output_spikes"]), "-", "-", "-"])
        for stage in ("float", "deployed"):
            s = r[stage]
            rows.append([r["framework"], stage, f"{s['accuracy']:.4f}", f"{s['accuracy_ratio']:.3f}",
                         str(s["output_spikes"]), f"{100 * s['spike_count_rel_diff']:+.1f}%",
                         f"{s['step_agreement']:.4f}", f"{s['samples_identical']:.3f}"])
    lava = ", ".join(f"{r['framework']}: {'identical' if r.get('lava_equals_reference') else 'DIFFER'} on "
                     f"{r.get('lava_samples', 0)} samples" for r in d["results"])
    return "\n".join([
        "## Bring your own model: framework against deployed", "",
        f"A small RSNN ({d['hidden']} recurrent neurons) trained with each framework's own BPTT for {d['epochs']} "
        f"epochs on {d['data']} (reset to zero, Loihi's convention), exported with `rsnn2chip.interop`, then "
        f"run on the test split ({d['results'][0]['test_samples']} samples) as the imported float IR and as the "
        f"compiled network ({d['target']}, reference backend). Spikes are compared after the time shift of one "
        "step per weight layer (docs/byom.md).", "",
        f"Command: `.venv/bin/{d['command']}`", "",
        table(["framework", "run", "accuracy", "x framework", "output spikes", "count vs framework",
               "per-step agreement", "identical samples"], rows), "",
        f"Lava against the reference backend: {lava}.", "",
        "Reading: the float import keeps accuracy and the spike count; per-step agreement below 1 comes from "
        "biases acting from step 0 while the input reaches a layer d steps later (`bias-onset`), which matters on "
        "these 16-step samples. Quantization to Loihi's integers then moves single spikes (identical samples "
        "drop) but not accuracy or the count.", ""])


SECTIONS = {"accuracy": accuracy, "accuracy_init1": accuracy_init1, "sim_speed": sim_speed, "lava_speed": lava_speed,
            "mapping": mapping, "scml_sweep": scml_sweep, "deploy_fidelity": deploy_fidelity, "hrmas": hrmas,
            "hrmas_fmnist-rows": hrmas, "hrmas_512": hrmas, "softlif": softlif, "interop": interop}
EXTRA = {}  # name -> renderer, filled below by later benchmarks


def main() -> None:
    parts = [(ROOT / "bench" / "benchmarks_intro.md").read_text().rstrip() + "\n"]
    for name, render in {**SECTIONS, **EXTRA}.items():
        parts.append(render(load(name)))
    (ROOT / "docs" / "benchmarks.md").write_text("\n".join(parts))
    print("wrote docs/benchmarks.md")


if __name__ == "__main__":
    main()

"""``rsnn2chip export``: write a compiled network in lava-dl netx HDF5 or NIR."""
from __future__ import annotations

import zipfile
from pathlib import Path

from rsnn2chip import argtypes, artifact
from rsnn2chip.errors import ModelError, about_file
from rsnn2chip.fileio import check_distinct_paths, check_output_file
from rsnn2chip.safeio import ZIP_READ_ERRORS
from rsnn2chip.exporters import EXPORTERS, export, exporter
from rsnn2chip.frontends import load_network
from rsnn2chip.frontends.nir import DEFAULT_DT

HELP = "export a compiled network (.r2c) to lava-dl netx HDF5 (.net) or NIR (.nir)"
EXAMPLE = "rsnn2chip export net.r2c --format netx -o net.net"


def add_arguments(parser) -> None:
    parser.add_argument("artifact", help="compiled network (.r2c); for --format nir also any model file "
                                         "rsnn2chip reads (model.pt, .nir, .net)")
    parser.add_argument("--format", required=True, choices=sorted(EXPORTERS), help="output format")
    parser.add_argument("-o", "--output", type=argtypes.path_text,
                        help="output path (default: ARTIFACT with the format's suffix)")
    parser.add_argument("--dt", type=argtypes.positive_float, default=DEFAULT_DT,
                        help="NIR only: time step in seconds the time constants are written for (default %(default)g)")
    parser.add_argument("--values", choices=("float", "deployed"), default="float",
                        help="NIR only: trained float parameters, or the float image of the quantized ones")
    parser.add_argument("--exact", action="store_true",
                        help="netx only: refuse rather than re-quantize when the artifact's own integers cannot be "
                             "written as netx's (docs/interop.md)")


def is_artifact(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return artifact.MANIFEST in z.namelist()
    except ZIP_READ_ERRORS:
        return False


def source(path: Path, fmt: str):
    """``(graph, target)``: an artifact's quantized IR and target, or (NIR only) any model's float IR."""
    # A damaged .r2c is no zip with a manifest, yet it is meant as an artifact: its loader says what is wrong.
    if is_artifact(path) or path.suffix == ".r2c":
        art = artifact.load(path)
        return art.graph, art.target
    if fmt == "netx":
        raise ModelError("netx export needs a compiled artifact (.r2c)", file=str(path),
                         fix=f"compile it first: `rsnn2chip compile {path} -o net.r2c`")
    return load_network(path), None


def run(args, out) -> int:
    path = Path(args.artifact)
    module = exporter(args.format)
    output = Path(args.output) if args.output else path.with_suffix(module.SUFFIX)
    check_distinct_paths({"ARTIFACT": path}, {"-o/--output": output})
    check_output_file(output)
    graph, target = source(path, args.format)
    options = {"dt": args.dt, "values": args.values} if args.format == "nir" else \
        {"target": target, "exact": args.exact}
    with about_file(path):  # what the exporter refuses is in the network read from this file
        summary = export(graph, output, args.format, **options)
    if args.json:
        out.json(summary)
        return 0
    requantized = summary.get("requantized")
    if requantized:
        agreement = min(requantized["agreement"].values(), default=1.0)
        out.console.print(
            f"[yellow]warning:[/] {path}'s own integers cannot be written as netx's ("
            + "; ".join(requantized["why"][:3]) + (" ..." if len(requantized["why"]) > 3 else "")
            + f"), so it was re-quantized for netx (integer weight exponents, threshold mantissa "
            f"{requantized['threshold_mantissa']}, biases in multiples of 64). The file runs exactly like that "
            f"re-quantization; its spikes agree with {path.name}'s on {agreement:.2%} of (step, neuron) pairs in the "
            f"least similar layer ({requantized['inputs']}). For a file identical to the artifact, compile with "
            f"`--threshold-mantissa {requantized['threshold_mantissa']}` on a target with "
            "quantization.weight_exp_min = weight_exp_max = 0 (docs/interop.md); --exact refuses instead.",
            soft_wrap=True)
    out.console.print(f"exported [bold]{path}[/] as {module.NAME} -> {output}")
    return 0

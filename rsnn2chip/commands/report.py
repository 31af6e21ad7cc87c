import contextlib
import io
import os
from pathlib import Path

from rich.console import Console

from rsnn2chip import activity, argtypes, artifact
from rsnn2chip.errors import InputError, about_file
from rsnn2chip.report import build
from rsnn2chip.fileio import atomic_directory, atomic_write_bytes as write_file, json_text
from rsnn2chip.viz import figures, html, text

HELP = ("report a compiled network: per-core utilisation, quantization diagnostics, inter-core traffic, "
        "cost estimate and pictures (text, JSON or one self-contained HTML file)")
EXAMPLE = "rsnn2chip report net.r2c --activity run/ --format html -o report/"
IMAGE_FORMATS = ("png", "svg")


def add_arguments(parser) -> None:
    parser.add_argument("artifact", help="compiled network (.r2c)")
    parser.add_argument("--activity", metavar="RUN", type=argtypes.path_text,
                        help="a run saved by `rsnn2chip run ... --save-activity RUN`: adds measured traffic, "
                             "the cost estimate and activity plots")
    parser.add_argument("--format", default="text", choices=sorted(FORMATS),
                        help="text (rich tables, default), json (same numbers, machine-readable) or html")
    parser.add_argument("-o", "--output", metavar="DIR", type=argtypes.path_text,
                        help="write report.<format> and the pictures (PNG and SVG) here "
                             "(html default: ARTIFACT-report/)")
    parser.add_argument("--rows", "--cores", dest="rows", type=argtypes.positive_int, default=20,
                        help="rows of the per-core and per-link tables in text output (all are in json and html)")
    parser.add_argument("--image-formats", default=",".join(IMAGE_FORMATS),
                        help="picture files written with -o (comma-separated: png, svg)")


def _image_formats(value: str) -> tuple[str, ...]:
    fmts = tuple(f.strip() for f in value.split(",") if f.strip())
    bad = [f for f in fmts if f not in IMAGE_FORMATS]
    if bad:
        raise InputError("unknown picture format", where="--image-formats", found=bad, allowed=", ".join(IMAGE_FORMATS),
                         fix=f"--image-formats {','.join(IMAGE_FORMATS)} (or a subset; empty for none)")
    return fmts


def _pictures(rep: dict, act, out_dir: Path | None, fmts) -> dict:
    figs = figures.figures(rep, act)
    if out_dir is not None and fmts:
        figures.save(figs, out_dir, fmts)
    return figs


def _text_file(rep: dict) -> bytes:
    buf = io.StringIO()
    text.render(rep, Console(file=buf, width=200, color_system=None, highlight=False), max_rows=None)
    return buf.getvalue().encode()


def _wide(console: Console) -> Console:
    """Output going to a file or pipe gets 200 columns (unless COLUMNS says otherwise), since rich would
    otherwise assume 80 and fold the per-core table into unreadable slivers."""
    if console.is_terminal:
        return console
    return Console(file=console.file, width=int(os.environ.get("COLUMNS", 200)), highlight=False)


def write_text(rep: dict, act, args, out, out_dir: Path | None) -> Path | None:
    text.render(rep, _wide(out.console), max_rows=args.rows)
    if out_dir is None:
        return None
    _pictures(rep, act, out_dir, _image_formats(args.image_formats))
    write_file(out_dir / "report.txt", _text_file(rep))
    return out_dir / "report.txt"


def write_json(rep: dict, act, args, out, out_dir: Path | None) -> Path | None:
    out.json(rep)
    if out_dir is None:
        return None
    _pictures(rep, act, out_dir, _image_formats(args.image_formats))
    write_file(out_dir / "report.json", json_text(rep).encode())
    return out_dir / "report.json"


def write_html(rep: dict, act, args, out, out_dir: Path) -> Path:
    figs = _pictures(rep, act, out_dir, _image_formats(args.image_formats))
    page = html.render(rep, {name: figures.png_base64(fig) for name, fig in figs.items()})
    path = out_dir / "report.html"
    write_file(path, page.encode("utf-8"))
    return path


FORMATS = {"text": write_text, "json": write_json, "html": write_html}


def run(args, out) -> int:
    art = artifact.load(args.artifact)
    act = activity.load(args.activity) if args.activity else None
    # What build refuses, once the artifact has loaded, is the activity: that it is not this network's.
    with about_file(args.activity) if act is not None else contextlib.nullcontext():
        rep = build(art, act)
    fmt = "json" if args.json else args.format
    _image_formats(args.image_formats)  # a bad list is refused before anything is written
    source = Path(args.artifact)
    out_dir = Path(args.output) if args.output else source.with_name(source.stem + "-report") if fmt == "html" \
        else None
    if out_dir is None:
        FORMATS[fmt](rep, act, args, out, None)
        return 0
    # Report and pictures are written beside the directory and moved in together: never new pictures beside
    # an old report.html, whatever stops the run.
    with atomic_directory(out_dir) as tmp:
        written = out_dir / FORMATS[fmt](rep, act, args, out, tmp).name
    out.err.print(f"wrote {written}" + (f" and pictures in {out_dir}" if args.image_formats else ""))
    return 0

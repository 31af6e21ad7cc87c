"""The report as one self-contained HTML page: tables, inline CSS, PNG images as base64 data URIs.

Nothing is fetched when the page opens (no scripts, fonts or stylesheets from
elsewhere), so it can be mailed, archived and viewed offline.
"""
from __future__ import annotations

import html

from rsnn2chip.viz.tables import TableSpec, sections

ROW_CLASSES = {None: "", "busiest": "busiest", "emptiest": "emptiest", "warn": "warn"}
FIGURE_CAPTIONS = {
    "mesh": "Per-core utilisation on the chip mesh (colour: the most used resource of each core).",
    "layers": "What each core holds (its motifs or neurons), coloured by layer.",
    "traffic": "Inter-core traffic: arrow width and colour grow with the traffic on the link.",
    "traffic_matrix": "Inter-core traffic as a core x core matrix (row: from, column: to; log colour scale).",
    "activity": "Spike raster (sample 0) and firing-rate histogram of every population.",
}
# Every core fits in a page; every link of a large mesh (n^2) would not, and --json has them all.
MAX_LINKS = 300
# Each picture sits in the section whose numbers it shows.
FIGURE_SECTION = {"mesh": "cores", "layers": "cores", "traffic": "traffic", "traffic_matrix": "traffic",
                  "activity": "activity"}
CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:2em}
table{border-collapse:collapse;margin:12px 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:pre-line}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}caption{text-align:left;font-weight:600;padding:4px 0;white-space:nowrap}
tr.busiest td{background:#fde0e0;font-weight:600}tr.emptiest td{background:#dde9fb;font-weight:600}
tr.warn td{background:#fff6d6}.note{color:#666;font-size:12px}
.estimate{background:#fff3cd;border:1px solid #e0c36b;padding:8px 12px;margin:8px 0}
figure{margin:16px 0}figure img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:13px}
nav a{margin-right:12px}#core-count-table td{text-align:left}
"""


def table_html(spec: TableSpec) -> str:
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in spec.columns)
    thead = f"<thead><tr>{head}</tr></thead>" if any(spec.columns) else ""  # key/value tables have no header
    body = "".join(f'<tr class="{ROW_CLASSES[s]}">' + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>"
                   for row, s in zip(spec.rows, spec.styles))
    note = f'<div class="note">{e(spec.note)}</div>' if spec.note else ""
    return f'<table id="{e(spec.id)}"><caption>{e(spec.title)}</caption>{thead}<tbody>{body}</tbody></table>{note}'


def figure_html(name: str, png_b64: str) -> str:
    caption = html.escape(FIGURE_CAPTIONS.get(name, name))
    return f'<figure id="figure-{name}"><img alt="{caption}" src="data:image/png;base64,{png_b64}">' \
           f"<figcaption>{caption}</figcaption></figure>"


def section_html(sid: str, heading: str, tables: list[TableSpec], rep: dict, pictures: str) -> str:
    body = "".join(table_html(t) for t in tables)
    if sid == "cost" and rep["cost"] is not None:
        body = ('<p class="estimate"><b>Estimates.</b> Energy and time are computed from the target\'s '
                "per-operation figures (see Sources) and the run's operation counts; they are not measurements. "
                "Time assumes cores work in parallel and each step waits for the busiest core.</p>") + body
    if not tables and not pictures:
        body = '<p class="note">Needs a run: pass <code>--activity RUN</code>, written by ' \
               "<code>rsnn2chip run ... --save-activity RUN</code>.</p>"
    return f'<section id="{sid}"><h2>{html.escape(heading)}</h2>{body}{pictures}</section>'


def render(rep: dict, images: dict[str, str]) -> str:
    """The page; ``images`` maps figure name -> base64 PNG."""
    parts = sections(rep, max_rows=None, max_links=MAX_LINKS)
    pictures = {sid: "".join(figure_html(name, b64) for name, b64 in images.items()
                             if FIGURE_SECTION.get(name, "pictures") == sid) for sid, _, _ in parts}
    nav = "".join(f'<a href="#{sid}">{html.escape(head)}</a>' for sid, head, _ in parts)
    body = "".join(section_html(sid, head, tables, rep, pictures[sid]) for sid, head, tables in parts)
    title = html.escape(f"rsnn2chip report: {rep['network']} on {rep['target']}")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'<style>{CSS}</style></head><body><h1>{title}</h1><nav>{nav}</nav>{body}</body></html>')

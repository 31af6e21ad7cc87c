"""The report as rich tables in a terminal."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from rsnn2chip.viz.tables import TableSpec, sections

ROW_STYLES = {None: None, "busiest": "bold red", "emptiest": "bold blue", "warn": "yellow"}


def rich_table(spec: TableSpec) -> Table:
    table = Table(title=spec.title, caption=spec.note or None, show_header=any(spec.columns))
    for col in spec.columns:
        table.add_column(col, overflow="fold")  # a number cut to "12…" would be worse than a wrapped one
    for row, style in zip(spec.rows, spec.styles):
        table.add_row(*row, style=ROW_STYLES[style])
    return table


def render(rep: dict, console: Console, max_rows: int | None = 20) -> None:
    for _, heading, tables in sections(rep, max_rows):
        console.rule(f"[bold]{heading}")
        if not tables:
            console.print("(needs a run: pass --activity RUN, written by `rsnn2chip run ... --save-activity RUN`)")
        for spec in tables:
            console.print(rich_table(spec))
    if rep["cost"] is not None:
        console.print("[bold yellow]Energy and time are estimates[/] from per-operation figures of the target "
                      "(see the sources table and docs/reports.md), not measurements.")

"""The package's shape: no import cycles between rsnn2chip modules, and the library never imports the CLI layer."""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parent.parent / "rsnn2chip"


def module_names() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """rsnn2chip modules ``name`` imports anywhere in its source, function bodies included.

    A deferred import still makes the two modules depend on each other, so it counts. ``from pkg import x``
    names the submodule ``pkg.x`` when there is one, else ``pkg``; the implicit import of parent packages
    that Python performs for every submodule is not an edge (it would make every re-exporting package
    ``__init__`` a cycle).
    """
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {m for m in found if m in modules and m != name}


def import_graph() -> nx.DiGraph:
    modules = module_names()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        graph.add_edges_from((name, dep) for dep in imported_modules(name, path, modules))
    return graph


def test_the_import_graph_sees_the_package():
    graph = import_graph()
    # Known edges, so an empty or broken graph cannot pass the cycle test below.
    assert graph.number_of_nodes() > 50
    assert graph.has_edge("rsnn2chip.compiler", "rsnn2chip.passes.partition")
    assert graph.has_edge("rsnn2chip.passes.partition", "rsnn2chip.passes.place")
    assert graph.has_edge("rsnn2chip.commands.train", "rsnn2chip.softlif.training")  # a deferred import counts


def test_there_are_no_import_cycles():
    cycles = sorted(nx.simple_cycles(import_graph()), key=len)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join([*c, c[0]]) for c in cycles[:20])


def test_the_library_never_imports_the_command_layer():
    graph = import_graph()
    library = [n for n in graph if not n.startswith("rsnn2chip.commands") and n not in ("rsnn2chip.cli",
                                                                                           "rsnn2chip.__main__")]
    offenders = sorted((n, d) for n in library for d in graph.successors(n)
                       if d.startswith("rsnn2chip.commands") or d == "rsnn2chip.cli")
    assert not offenders, offenders

"""Frontend for rsnn2chip's own checkpoints (``model.pt``, see rsnn2chip.checkpoint)."""
from __future__ import annotations

from pathlib import Path

import networkx as nx

from rsnn2chip.checkpoint import ZIP_MAGIC, model_from_checkpoint

NAME = "rsnn2chip checkpoint (model.pt)"


def sniff(path: str | Path) -> bool:
    """True for a zip archive, the container torch.save writes; reads 4 bytes and never unpickles."""
    try:
        with Path(path).open("rb") as handle:
            return handle.read(len(ZIP_MAGIC)) == ZIP_MAGIC
    except OSError:
        return False


def load(path: str | Path) -> nx.DiGraph:
    graph = model_from_checkpoint(path).to_ir()
    graph.graph["source"] = str(path)
    return graph

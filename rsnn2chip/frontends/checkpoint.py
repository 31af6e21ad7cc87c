"""Frontend for rsnn2chip's own checkpoints (``model.pt``, see rsnn2chip.checkpoint)."""
from __future__ import annotations

from pathlib import Path

import networkx as nx

from rsnn2chip import ir
from rsnn2chip.checkpoint import ZIP_MAGIC, load_checkpoint, model_from_checkpoint
from rsnn2chip.data.encoding import graded_input_of
from rsnn2chip.nn.network import INPUT_NAME

NAME = "rsnn2chip checkpoint (model.pt)"


def sniff(path: str | Path) -> bool:
    """True for a zip archive, the container torch.save writes; reads 4 bytes and never unpickles."""
    try:
        with Path(path).open("rb") as handle:
            return handle.read(len(ZIP_MAGIC)) == ZIP_MAGIC
    except OSError:
        return False


# Training facts a compiled network needs to be fed and read exactly as in training.
TRAINING_KEYS = ("dataset", "encoding", "readout")


def load(path: str | Path) -> nx.DiGraph:
    graph = model_from_checkpoint(path).to_ir()
    graph.graph["source"] = str(path)
    meta = load_checkpoint(path).get("meta", {})
    graph.graph["training"] = {k: meta[k] for k in TRAINING_KEYS if meta.get(k) is not None}
    # A model trained on graded values payload / 2**frac_bits: the chip receives the payloads.
    ir.population(graph, INPUT_NAME).graded = graded_input_of(meta.get("encoding"))
    return graph

"""Neuron models, looked up by name: an arch's ``neuron: {model: <name>, ...}`` and an artifact's
populations name one of :data:`NEURON_MODELS`. Adding a model is one module implementing
:class:`~rsnn2chip.neurons.base.NeuronModel` and one line here."""
from __future__ import annotations

from rsnn2chip.errors import ModelError
from rsnn2chip.neurons import atrlif, cuba_lif
from rsnn2chip.neurons.base import NeuronModel, ParamArrays

NEURON_MODELS: dict[str, NeuronModel] = {m.name: m for m in (
    cuba_lif.MODEL,
    atrlif.MODEL,
)}
# Archs and checkpoints written before neuron models existed have no ``model`` key.
DEFAULT_MODEL = cuba_lif.MODEL.name
# Artifacts written before neuron models existed name the parameter classes instead.
LEGACY_NAMES = {"CubaLIF": cuba_lif.MODEL.name, "LoihiLIF": cuba_lif.MODEL.name}


def get(name: str, where: str | None = None) -> NeuronModel:
    model = NEURON_MODELS.get(LEGACY_NAMES.get(name, name)) if isinstance(name, str) else None
    if model is None:
        raise ModelError("unknown neuron model", where=where, found=repr(name), allowed=sorted(NEURON_MODELS),
                         fix="set neuron.model to one of the allowed models")
    return model


def model_of(params: ParamArrays) -> NeuronModel:
    """The model a parameter record (``Population.neuron`` or ``.fixed``) belongs to."""
    return NEURON_MODELS[params.MODEL]

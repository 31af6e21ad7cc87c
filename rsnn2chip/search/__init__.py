"""HRMAS architecture search of SC-ML layers with SpiKL-IP self-repair (docs/hrmas.md).

``space`` reads SPACE.yaml, ``supernet`` holds the softmax-relaxed layers, ``ip`` the intrinsic-plasticity
rule, ``hrmas`` the alternating loop, discretisation and retraining, ``plots`` the pictures.
"""
from rsnn2chip.search.hrmas import Interrupted, SearchOutcome, run_hrmas, search_phase
from rsnn2chip.search.space import IPConfig, RetrainConfig, SearchConfig, Space, load_space, space_from_dict
from rsnn2chip.search.supernet import Supernet

__all__ = ["Interrupted", "SearchOutcome", "run_hrmas", "search_phase", "IPConfig", "RetrainConfig",
           "SearchConfig", "Space", "load_space", "space_from_dict", "Supernet"]

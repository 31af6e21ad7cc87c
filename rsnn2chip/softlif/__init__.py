"""Soft-LIF rate training and spiking deployment (Hunsberger & Eliasmith 2015); see docs/softlif.md.

A feed-forward rate network is trained on static images with the soft-LIF rate function (optionally with
the paper's training noise), then converted to a spiking RSNN of ``lif_dense`` layers whose rates
approximate the trained ones on Loihi's fixed-point LIF. The converted network is an ordinary checkpoint,
so ``rsnn2chip compile`` and ``rsnn2chip eval`` need nothing new; ``meta["softlif"]`` records the
conversion, from which :func:`rate_net_from_checkpoint` rebuilds the rate network.
"""
from rsnn2chip.softlif.ann import ANNConfig, RateNet
from rsnn2chip.softlif.convert import Deployment, constants, rate_net_from_checkpoint, rate_net_from_rsnn, to_rsnn
from rsnn2chip.softlif.rates import (RateNeuron, SoftLIFParams, lif_rate, loihi_rate, loihi_steps_per_spike,
                                     softlif_rate)

__all__ = ["ANNConfig", "RateNet", "Deployment", "constants", "rate_net_from_checkpoint", "rate_net_from_rsnn",
           "to_rsnn", "RateNeuron", "SoftLIFParams", "lif_rate", "loihi_rate", "loihi_steps_per_spike",
           "softlif_rate"]

"""rsnn2chip: deploy recurrent spiking neural networks onto Loihi-class chips."""
from rsnn2chip import _lava_compat

__version__ = "0.1.0"

_lava_compat.install()

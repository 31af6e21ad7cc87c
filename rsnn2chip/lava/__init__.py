"""rsnn2chip networks as Lava processes: ``from rsnn2chip.lava import Network`` (see docs/lava.md)."""
from rsnn2chip.lava.population import PopulationView
from rsnn2chip.lava.proc.network import Network

__all__ = ["Network", "PopulationView"]

from rich.table import Table

from rsnn2chip.passes.checks import rules_for
from rsnn2chip.targets import available_targets, load_target, targets_dir

HELP = "list the hardware targets found in targets/ (one TOML file each) and the neuron models each runs"
EXAMPLE = "rsnn2chip targets --json"


def add_arguments(parser) -> None:
    pass


def run(args, out) -> int:
    rows = []
    for name, path in available_targets().items():
        t = load_target(str(path))
        rules = [r.__name__ for r in rules_for(t)]  # also checks that every rule the file names exists
        rows.append({"name": t.name, "description": t.description, "chips": t.chip.chips,
                     "cores_per_chip": t.chip.cores, "neurons_per_core": t.core.neurons,
                     "synapse_memory_bits": t.core.synapse_memory_bits, "neuron_models": list(t.core.neuron_models),
                     "weight_bits": t.synapse_encoding.weight_bits, "accumulator_bits": t.core.accumulator_bits,
                     "simulator": t.info.simulator, "design_rules": rules, "path": str(path)})
    if args.json:
        out.json({"targets_dir": str(targets_dir()), "targets": rows})
        return 0
    table = Table(title=f"targets in {targets_dir()}")
    for col in ("name", "chips", "cores/chip", "neurons/core", "synapse KB/core", "neuron models", "description"):
        table.add_column(col)
    for r in rows:
        # One neuron model per line keeps the column narrow.
        table.add_row(r["name"], str(r["chips"]), str(r["cores_per_chip"]), str(r["neurons_per_core"]),
                      f"{r['synapse_memory_bits'] / 8192:g}", "\n".join(r["neuron_models"]), r["description"])
    out.console.print(table)
    return 0

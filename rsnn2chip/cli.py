"""Command-line entry point: ``rsnn2chip COMMAND ...`` (also ``python -m rsnn2chip``).

Each command lives in ``rsnn2chip/commands/<name>.py`` and exposes ``HELP``,
``EXAMPLE``, ``add_arguments(parser)`` and ``run(args, out) -> int``. User
errors (:class:`R2CError`) print a message naming what to fix, without a
traceback unless ``--debug`` is given, and exit with status 2.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback
from contextlib import AbstractContextManager, nullcontext

from rich.console import Console
from rich.markup import escape

from rsnn2chip import __version__
from rsnn2chip.errors import R2CError

import rsnn2chip.commands as _commands_pkg

# Commands are discovered, so adding one is adding a module; the listed ones come first in --help.
_FIRST = ("train", "eval", "search", "compile", "run", "verify", "report", "export", "targets")
COMMANDS = sorted((m.name for m in pkgutil.iter_modules(_commands_pkg.__path__) if not m.name.startswith("_")),
                  key=lambda n: (_FIRST.index(n) if n in _FIRST else len(_FIRST), n))


class Output:
    """Where commands write: rich for people, plain JSON on stdout with --json."""

    def __init__(self, json_mode: bool):
        self.json_mode = json_mode
        self.console = Console(stderr=json_mode, highlight=False)
        self.err = Console(stderr=True, highlight=False)

    def json(self, payload) -> None:
        from rsnn2chip.fileio import json_text  # loads NumPy, which the lightest commands start without
        sys.stdout.write(json_text(payload) + "\n")

    def status(self, message: str, quiet: bool | None = None) -> AbstractContextManager:
        """A spinner with ``message`` on stderr while a block runs; nothing when ``quiet`` (default: --json)."""
        quiet = self.json_mode if quiet is None else quiet
        return nullcontext() if quiet else self.err.status(message, spinner="dots")


class UsageError(R2CError):
    """A command line argparse refuses (unknown option, out-of-range number, missing argument)."""


class _Parser(argparse.ArgumentParser):
    """argparse, whose refusals ``main`` reports like any other user error (exit 2, JSON under --json)."""

    def error(self, message: str):
        raise UsageError(message, where=self.prog, fix=f"see `{self.prog} --help`")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or, given the command being run, one that loads only that command's module.

    Command modules import torch, lava and friends; loading all of them cost every
    invocation seconds of start-up, even `rsnn2chip targets`.
    """
    parser = _Parser(prog="rsnn2chip", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="example:\n  rsnn2chip compile model.pt --target loihi2-sim -o net.r2c\n"
                                            "  rsnn2chip run net.r2c --input x.npy --steps 100 --compare")
    parser.add_argument("--version", action="version", version=f"rsnn2chip {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        if command is not None and name != command:
            sub.add_parser(name)  # still a valid choice for argparse; its module need not load
            continue
        module = importlib.import_module(f"rsnn2chip.commands.{name}")
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP,
                             epilog=f"example:\n  {module.EXAMPLE}", formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(cmd)
        cmd.add_argument("--json", action="store_true", help="machine-readable output on stdout")
        cmd.add_argument("--debug", action="store_true", help="show tracebacks for errors")
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Before parsing, so that argparse's own refusals honour them too.
    out, debug = Output("--json" in argv), "--debug" in argv
    try:
        # The only options before a command are --help/--version, so a command is always argv[0].
        args = build_parser(argv[0] if argv and argv[0] in COMMANDS else None).parse_args(argv)
        return int(args._run(args, out) or 0)
    except (R2CError, MemoryError, OSError) as exc:
        if debug:  # the traceback, and the same exit status: scripts that test for 2 keep working
            traceback.print_exc()
        error = exc if isinstance(exc, R2CError) else environment_error(exc)
        if out.json_mode:
            out.json(error.to_dict())
        else:
            # Escaped: messages contain [rule_name] tags that rich would take for markup.
            out.err.print(f"[bold red]error:[/] {escape(error.render())}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        out.err.print("interrupted")
        return 130
    except Exception as exc:  # an rsnn2chip bug, not a user error: say so, keep the traceback one flag away
        if debug:
            traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}"
        if out.json_mode:
            out.json({"error": "InternalError", "problems": [{"message": message}]})
        hint = "" if debug else " Re-run with --debug for the traceback."
        out.err.print(f"[bold red]internal error:[/] {escape(message)}\nThis is a bug in rsnn2chip.{hint}",
                      soft_wrap=True)
        return 1


def environment_error(exc: MemoryError | OSError) -> R2CError:
    """What the machine refused (memory, disk, permissions): the user's to fix, not a bug in rsnn2chip."""
    if isinstance(exc, MemoryError):
        # Preflight estimates catch the sizes we know of (docs/reliability.md); this names the rest.
        return R2CError("out of memory: the input asks for more memory than is available", resource="memory",
                        fix="use smaller inputs (steps, batch, network), or a machine with more memory")
    # Imported here: fileio loads NumPy, which the start-up of the lightest commands does without.
    from rsnn2chip.fileio import output_error
    return output_error(exc.filename, exc, "file system error")


if __name__ == "__main__":
    sys.exit(main())

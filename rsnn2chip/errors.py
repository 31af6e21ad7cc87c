"""User-facing errors.

Every error a user can cause derives from :class:`R2CError`. It carries the
facts a person needs to act: which file, which layer/motif/core, which
resource, what was found, what is allowed, and how to fix it. The CLI prints
these without a traceback (unless ``--debug``) and exits non-zero.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Iterator


@dataclass
class Problem:
    """One thing that is wrong, described well enough to fix it."""

    message: str
    file: str | None = None
    where: str | None = None  # layer, motif, population, projection or core
    resource: str | None = None
    found: Any = None
    allowed: Any = None
    fix: str | None = None
    rule: str | None = None  # name of the design rule that found it, if any
    severity: str = "error"  # "error" stops compilation; "warning" is reported only

    def render(self) -> str:
        head = self.message
        if self.rule:
            head = f"[{self.rule}] {head}"
        if self.severity != "error":
            head = f"{self.severity}: {head}"
        lines = [head]
        for label, value in (
            ("file", self.file),
            ("where", self.where),
            ("resource", self.resource),
            ("found", self.found),
            ("allowed", self.allowed),
            ("fix", self.fix),
        ):
            if value is not None:
                lines.append(f"  {label + ':':9} {value}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


class R2CError(Exception):
    """An error caused by input the user can fix; holds one or more problems."""

    def __init__(self, message: str | None = None, *, problems: list[Problem] | None = None, **fields):
        if problems is None:
            problems = [Problem(message or "error", **fields)]
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        if len(self.problems) == 1:
            return self.problems[0].render()
        body = "\n".join(f"{i}. {p.render()}" for i, p in enumerate(self.problems, 1))
        return f"{len(self.problems)} problems found:\n{body}"

    def to_dict(self) -> dict:
        return {"error": type(self).__name__, "problems": [p.to_dict() for p in self.problems]}


@contextmanager
def about_file(file: str) -> Iterator[None]:
    """Problems raised inside the block that name no file are about ``file`` (a validator that sees only the
    parsed content does not know where it came from)."""
    try:
        yield
    except R2CError as exc:
        for problem in exc.problems:
            problem.file = problem.file or str(file)
        exc.args = (exc.render(),)
        raise


class CheckpointError(R2CError):
    """A model file that is not a valid rsnn2chip checkpoint."""


class ArtifactError(R2CError):
    """A compiled artifact that is missing, corrupt, or from another version."""


class TargetError(R2CError):
    """A target description that is missing or malformed."""


class InputError(R2CError):
    """Run-time input (spike arrays, datasets) of the wrong shape or content."""


class SpikeCountsError(InputError):
    """Measured spike counts (``compile --spike-counts``) that do not fit the network; the compile command
    names their file, which the pass that reads them does not know."""


class ModelError(R2CError):
    """A network that cannot be expressed on the target (bad parameters, topology)."""


class DesignRuleError(R2CError):
    """One or more design-rule violations found while compiling."""


class OutputError(R2CError):
    """An output that cannot be written (read-only or full disk, a path that is a directory, ...)."""


class BackendError(R2CError):
    """A simulator backend failed; the message carries the backend's own error."""

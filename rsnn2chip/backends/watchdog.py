"""Run a callable in a disposable child process with a time limit.

Lava runs every process model in its own OS process. When a model raises
before it sends its output the whole run hangs forever, and when it raises
after, Lava reports only ``RuntimeError: 1 Exception(s) occurred`` and logs the
real traceback at INFO in the runtime. So every Lava call goes through
:func:`run_with_watchdog`: the call runs in a forked child that leads its own
process group (Lava's OS processes are its descendants and stay in that
group), the parent waits with a timeout, and afterwards the whole group is
killed, whatever happened. Errors raised inside Lava's OS processes are
appended to a file the parent reads, so the parent can report them even when
the child had to be killed.

Nothing outlives the CLI: the child and every process forked below it ask
the kernel to kill them when their parent dies (``PR_SET_PDEATHSIG``), so a
``kill -9`` of the CLI takes the whole tree down within moments, and the
resource tracker (started by the CLI, outside the tree) then unlinks the
``/dev/shm`` segments Lava had registered.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import sys
import tempfile
import traceback
from multiprocessing import resource_tracker
from typing import Any, Callable

from rsnn2chip.errors import BackendError

# Lava's OS processes inherit what the watchdog child sets up (they are forked
# from it), which is how the error hooks below reach them.
_START_METHOD = "fork"
_EXIT_GRACE_S = 2.0
_MAX_REPORT_CHARS = 8000


def run_with_watchdog(fn: Callable, args: tuple = (), timeout: float = 60.0, what: str = "Lava run") -> Any:
    """Return ``fn(*args)`` computed in a child process, or raise :class:`BackendError`.

    ``fn``'s result must be picklable. On timeout, on a crash, or on an
    exception in ``fn``, the child and all of its descendants are killed and
    the error raised carries the child's exception (type, message,
    traceback) and any exception raised inside Lava's own processes.
    """
    # Shared memory that Lava allocates is registered with the resource
    # tracker; started here it lives outside the child's process group, so it
    # survives the kill and unlinks leaked segments when this process exits.
    resource_tracker.ensure_running()
    _import_lava_runtime()
    ctx = mp.get_context(_START_METHOD)
    with tempfile.TemporaryDirectory(prefix="r2c-watchdog-") as tmp:
        log_path = os.path.join(tmp, "lava-errors.log")
        receiver, sender = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_child_main, args=(fn, args, log_path, sender, os.getpid()), daemon=False)
        child.start()
        sender.close()
        outcome = ("timeout", None)
        try:
            outcome = _wait_for_outcome(receiver, child, timeout)
        finally:
            # A child that reported may still be tearing Lava down; give it a
            # moment to exit cleanly before its group is killed.
            _kill_group(child, _EXIT_GRACE_S if outcome[0] in ("ok", "error") else 0.0)
            receiver.close()
        child_log = _read_tail(log_path)
    return _result_or_raise(outcome, child, timeout, what, child_log)


def _import_lava_runtime() -> None:
    """Import Lava's process layer here, before the fork.

    It calls ``multiprocessing.set_start_method('fork')`` at import, which
    raises in a multiprocessing child (the child's start method is already
    fixed), so the child must inherit the module instead.
    """
    try:
        import rsnn2chip  # noqa: F401 - installs the Python 3.11 fix Lava needs
        import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401
    except ImportError:
        pass  # no Lava: the watchdog still guards other calls
    except RuntimeError as exc:
        raise BackendError(f"cannot import Lava: {exc}",
                           fix="Lava sets the 'fork' start method itself; do not set another one "
                               "before the first Lava run") from exc


def _child_main(fn, args, log_path, conn, parent_pid) -> None:
    os.setsid()
    _die_with_parent(parent_pid)
    # Every process forked below (Lava's runtime processes, its shared-memory manager) dies with its parent
    # too, so killing the CLI by any signal brings the whole tree down.
    os.register_at_fork(before=_remember_pid, after_in_child=lambda: _die_with_parent(_forking_pid))
    try:
        _capture_lava_errors(log_path)
        message = ("ok", fn(*args))
    except BaseException as exc:  # noqa: BLE001 - everything must reach the parent
        message = ("error", _describe(exc))
    try:
        conn.send(message)
    except BaseException as exc:  # noqa: BLE001 - e.g. an unpicklable result
        conn.send(("error", _describe(exc)))
    finally:
        conn.close()
        logging.shutdown()
        # Skip interpreter shutdown: it would join Lava's leftover processes,
        # which may never end. The parent kills the group anyway.
        os._exit(0)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_forking_pid = 0


def _remember_pid() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux ``PR_SET_PDEATHSIG``).

    The watchdog child leads its own session, so neither a SIGKILL of the CLI nor
    a terminal's hang-up reaches it: without this, it and Lava's processes (about
    1 GB each) would run on. The parent may already be gone by the time this
    runs; then there is nothing to wait for.
    """
    if sys.platform.startswith("linux"):
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent_pid and os.getppid() != parent_pid:
        os._exit(1)


def _describe(exc: BaseException) -> dict:
    return {"type": type(exc).__name__, "message": str(exc),
            "traceback": "".join(traceback.format_exception(exc))}


def _capture_lava_errors(log_path: str) -> None:
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logging.getLogger("lava").addHandler(handler)
    _hook_lava_system_processes(log_path)


def _hook_lava_system_processes(log_path: str) -> None:
    """Record exceptions of Lava's OS processes before Lava swallows them.

    Lava's ``SystemProcess.run`` catches the model's exception and pipes it to
    a runtime that, in the hanging case, never reads it.
    """
    lava_mp = sys.modules.get("lava.magma.runtime.message_infrastructure.multiprocessing")
    if lava_mp is None:
        return
    original_run = lava_mp.SystemProcess.run
    if getattr(original_run, "_r2c_hooked", False):
        return

    def run(self):
        target = self._target

        def traced(*a, **kw):
            try:
                return target(*a, **kw)
            except BaseException:
                _append(log_path, f"exception in Lava process {self.name} (pid {os.getpid()}):\n"
                                  + traceback.format_exc())
                raise

        self._target = traced
        original_run(self)

    run._r2c_hooked = True
    lava_mp.SystemProcess.run = run


def _append(path: str, text: str) -> None:
    # O_APPEND keeps writes of concurrent Lava processes from interleaving.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, text.encode("utf-8", "replace"))
    finally:
        os.close(fd)


def _wait_for_outcome(receiver, child, timeout: float):
    """``("ok", result)``, ``("error", info)``, ``("died", None)`` or ``("timeout", None)``."""
    ready = mp.connection.wait([receiver, child.sentinel], timeout)
    if receiver in ready:
        try:
            return receiver.recv()
        except EOFError:
            return ("died", None)
    return ("died", None) if ready else ("timeout", None)


def _kill_group(child, grace: float) -> None:
    # Until join() reaps the child, its pid (= the group id) cannot be reused,
    # so killpg cannot hit an unrelated group.
    mp.connection.wait([child.sentinel], grace)
    for kill in (lambda: os.killpg(child.pid, signal.SIGKILL), lambda: os.kill(child.pid, signal.SIGKILL)):
        try:
            kill()
        except (ProcessLookupError, PermissionError):
            pass
    child.join()


def _read_tail(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return ""
    return text if len(text) <= _MAX_REPORT_CHARS else "...\n" + text[-_MAX_REPORT_CHARS:]


def _result_or_raise(outcome, child, timeout, what, child_log):
    kind, payload = outcome
    if kind == "ok":
        return payload
    if kind == "timeout":
        head = f"{what} did not finish within {timeout:.1f} s and was killed"
    elif kind == "died":
        head = f"{what} crashed (child exit code {child.exitcode}) without reporting an error"
    else:
        head = f"{what} failed: {payload['type']}: {payload['message']}"
    parts = [head]
    if kind == "error":
        parts.append("child traceback:\n" + _tail(payload["traceback"]))
    if child_log.strip():
        parts.append("errors logged inside Lava's processes:\n" + child_log.rstrip())
    raise BackendError("\n".join(parts), where=what,
                       fix=_FIX_HINT[kind])


def _tail(text: str) -> str:
    return text if len(text) <= _MAX_REPORT_CHARS else "...\n" + text[-_MAX_REPORT_CHARS:]


_FIX_HINT = {
    "timeout": "a Lava process model may have raised before sending (see above), or the run needs a "
               "longer timeout",
    "died": "the run was killed from outside (e.g. out of memory); try a smaller batch or network",
    "error": "see the errors above; they come from the Lava run itself",
}

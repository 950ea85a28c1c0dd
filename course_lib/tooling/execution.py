"""Run a notebook's code cells in a fresh kernel, with time limits that cannot be dodged.

:func:`run_cells` drives the kernel over the Jupyter messaging protocol itself (no nbclient):

- a per-cell and a total wall-clock limit; when either runs out the kernel is killed (with
  everything it started) and the later cells are not run, so a loop gives the same score
  whichever limit stops it;
- a cell is done when its ``execute_reply`` has come; a kernel that never reports "idle"
  afterwards cannot stall the run (nbclient #312), and a kernel that dies is noticed within a
  second;
- outputs are kept up to a byte budget (a printing loop cannot fill the grader's memory);
- after each cell, ``after_cell(index)`` may collect what the cell left behind (recorded values).
"""
from __future__ import annotations

import os
import queue
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CellOutcome", "run_cells", "kernel_manager"]

IDLE_GRACE = 3.0  # seconds to wait for "idle" once the reply has come
CONTROL_MIME = "application/x-course-"  # small display messages for the grader: kept whatever the output budget


@dataclass
class CellOutcome:
    """What happened to one code cell: ``status`` is ok, error, timeout, died or "not run"."""

    index: int
    status: str = "not run"
    error: str = ""
    seconds: float = 0.0
    outputs: list = field(default_factory=list)
    dropped_bytes: int = 0
    extra: dict = field(default_factory=dict)


def kernel_manager(argv: list[str], env: dict, connection_file: str | None = None, transport: str = "tcp",
                   ip: str | None = None):
    """A blocking KernelManager that starts ``argv`` (``{connection_file}`` in it) with exactly ``env``;
    its connection file (the kernel's key) at ``connection_file`` when given; ``transport="ipc"`` with
    ``ip`` a path prefix: Unix sockets at ``ip-PORT`` (as the kernel sees them)."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

    spec = KernelSpec(argv=argv, display_name="Python 3 (grading)", language="python", env={}, resource_dir="",
                      interrupt_mode="message")

    class _Spec(KernelSpecManager):
        def get_kernel_spec(self, kernel_name, *args, **kwargs):
            return spec

    km = KernelManager(kernel_name="python3", kernel_spec_manager=_Spec())
    if transport == "ipc":
        km.transport, km.ip = "ipc", ip
    if connection_file is not None:
        km.connection_file = str(connection_file)
    return km


def _one_line(text: str, width: int = 300) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= width else line[: width - 3] + "..."


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def _size(content: dict) -> int:
    if "text" in content:
        return len(content["text"])
    data = content.get("data", {})
    return sum(len(v) if isinstance(v, str) else len(str(v)) for v in data.values()) + len(str(content.get("traceback", "")))


def kill_process_tree(km, marker: str | None = None) -> None:
    """Kill the kernel and everything it started: its process group, and (with ``marker``) any process
    whose environment carries ``COURSE_GRADING_TOKEN=marker`` (a daemon that left the group)."""
    pid = None
    try:
        proc = getattr(km.provisioner, "process", None) if km.provisioner is not None else None
        pid = proc.pid if proc is not None else None
    except Exception:
        pid = None
    try:
        km.shutdown_kernel(now=True)
    except Exception:
        pass
    if pid is not None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass
    if marker and sys.platform.startswith("linux"):
        needle = f"COURSE_GRADING_TOKEN={marker}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, ValueError):
                continue


def run_cells(nb, argv: list[str], env: dict, cwd: str | Path, timeout: float, cell_timeout: float | None = None,
              max_cell_bytes: int = 20_000, max_total_bytes: int = 500_000, after_cell=None, marker: str | None = None,
              startup_timeout: float = 120, managers: set | None = None, *, transport: str = "tcp",
              ip: str | None = None, connection_file: str | Path | None = None,
              locate=None) -> list[CellOutcome]:
    """Execute ``nb``'s code cells in order in a kernel started as ``argv``; one outcome per code cell.

    The kernel start does not count against ``timeout``. ``managers``: a set the running kernel
    manager is added to while it runs (so that Ctrl-C elsewhere can kill it).

    A kernel in a sandbox (:mod:`course_lib.tooling.sandbox`): ``transport="ipc"`` and ``ip`` (the
    sockets' path prefix as the kernel sees it), ``connection_file`` (where to write it here), and
    ``locate(km)``, called until it returns the prefix under which this process reaches the sockets
    (or None while the sandbox is not up yet).
    """
    km = kernel_manager(argv, env, connection_file or Path(cwd) / ".kernel.json", transport=transport, ip=ip)
    outcomes = [CellOutcome(i) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    code_cells = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    kc = None
    if managers is not None:
        managers.add(km)
    try:
        import subprocess

        km.start_kernel(env=env, cwd=str(cwd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if locate is not None:
            seen_at, give_up = None, time.monotonic() + startup_timeout
            while seen_at is None and time.monotonic() < give_up and km.is_alive():
                seen_at = locate(km)
                if seen_at is None:
                    time.sleep(0.05)
            if seen_at is None:
                for o in outcomes:
                    o.status, o.error = "died", "the kernel did not start (its sandbox did not come up)"
                return outcomes
            km.ip = seen_at
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=startup_timeout)
        except RuntimeError as err:
            for o in outcomes:
                o.status, o.error = "died", f"the kernel did not start ({_one_line(err)})"
            return outcomes
        deadline = time.monotonic() + timeout
        total_bytes = 0
        for (index, cell), outcome in zip(code_cells, outcomes):
            outcome.index = index
            source = cell.source
            if not source.strip():
                outcome.status = "ok"
                continue
            limit = deadline if cell_timeout is None else min(deadline, time.monotonic() + cell_timeout)
            which = "per-cell" if cell_timeout is not None and limit < deadline else "submission's"
            start = time.monotonic()
            msg_id = kc.execute(source, store_history=True, allow_stdin=False, stop_on_error=False)
            reply, idle, reply_at = None, False, None
            control_kept = 0
            while reply is None or not idle:
                now = time.monotonic()
                if reply is not None and now - reply_at > IDLE_GRACE:
                    break  # replied but never said idle: do not wait for it
                if now >= limit:
                    outcome.status = "timeout"
                    span = cell_timeout if which == "per-cell" else timeout
                    outcome.error = f"stopped: the {which} time limit ({span:g} s) ran out in this cell"
                    break
                got_any = False
                try:
                    msg = kc.get_iopub_msg(timeout=min(0.5, max(limit - now, 0.01)))
                    got_any = True
                    if msg.get("parent_header", {}).get("msg_id") == msg_id:
                        kind, content = msg["msg_type"], msg["content"]
                        if kind == "status" and content.get("execution_state") == "idle":
                            idle = True
                        elif kind in ("stream", "execute_result", "display_data", "error"):
                            size = _size(content)
                            control = (kind == "display_data" and size < 4096 and control_kept < 100 and
                                       any(str(k).startswith(CONTROL_MIME) for k in content.get("data", {})))
                            control_kept += control
                            if kind == "error" or control or (total_bytes + size <= max_total_bytes
                                                   and outcome.dropped_bytes == 0
                                                   and sum(_size(o) for o in outcome.outputs) + size <= max_cell_bytes):
                                outcome.outputs.append({"output_type": kind, **content})
                                total_bytes += size
                            else:
                                outcome.dropped_bytes += size
                except queue.Empty:
                    pass
                if reply is None:
                    try:
                        shell = kc.get_shell_msg(timeout=0 if got_any else 0.05)
                        if shell.get("parent_header", {}).get("msg_id") == msg_id:
                            reply, reply_at = shell, time.monotonic()
                    except queue.Empty:
                        if not got_any and not km.is_alive():
                            outcome.status = "died"
                            outcome.error = "the kernel died in this cell (a crash, an exit, or out of memory)"
                            break
            outcome.seconds = time.monotonic() - start
            if outcome.status in ("timeout", "died"):
                break
            content = reply["content"] if reply else {}
            if content.get("status") == "ok":
                outcome.status = "ok"
            else:
                outcome.status = "error"
                outcome.error = _strip_ansi(_one_line(f"{content.get('ename', 'Error')}: {content.get('evalue', '')}"))
            if after_cell is not None:
                after_cell(index, outcome)
        stopped = next((o for o in outcomes if o.status in ("timeout", "died")), None)
        if stopped is not None:
            for o in outcomes:
                if o.status == "not run":
                    o.error = f"not run: the kernel was stopped in cell {stopped.index + 1} ({stopped.status})"
        return outcomes
    finally:
        if kc is not None:
            try:
                kc.stop_channels()
            except Exception:
                pass
        kill_process_tree(km, marker)
        if managers is not None:
            managers.discard(km)

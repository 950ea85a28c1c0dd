"""Start a command (a student's kernel) with limits, and isolated where Linux allows it.

The grader launches each student kernel as

    unshare --user --map-root-user --mount --pid --fork --kill-child --mount-proc \\
        python -m course_lib.tooling.sandbox --isolate --workdir W --hide S ... -- python -m ipykernel_launcher ...

(:func:`command`). In the new namespaces this module, before it ``exec``s the kernel:

- makes every file system read-only except the submission's own folder ``W`` and a private,
  small ``/dev/shm``, and puts an empty read-only folder over each ``--hide`` path (the solutions,
  the other submissions, the grader's output), so student code can neither read the hidden tests
  nor touch anyone's files;
- drops every capability (and sets ``no_new_privs``), so the kernel cannot undo those mounts;
- sets resource limits: memory (``RLIMIT_DATA``), CPU seconds, the size of a written file, no
  core dumps.

The PID namespace ends every process the kernel started (even a daemon that called ``setsid``)
when the kernel goes: ``--kill-child`` kills the namespace's first process when ``unshare`` is
killed. Without ``--isolate`` (where user namespaces are not available) only the limits apply.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import resource
import shutil
import subprocess
import sys

__all__ = ["command", "isolation_available", "main"]

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND = 32, 1024, 2048, 4096
MS_REC, MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 16384, 1 << 18, 1 << 21, 1 << 24
_KEEP = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
         "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME}
PR_CAPBSET_DROP, PR_SET_SECUREBITS, PR_SET_NO_NEW_PRIVS = 24, 28, 38
SECBIT_ALL_LOCKED = 0x3F  # NOROOT, NO_SETUID_FIXUP, KEEP_CAPS, each with its lock bit

UNSHARE = ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc"]

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    if _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _mounts() -> list[tuple[str, set]]:
    """(mount point, options) of every mount, parents before children."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            point = parts[4].encode().decode("unicode_escape")
            out.append((point, set(parts[5].split(","))))
    return out


def _isolate(workdir: str, hide: list[str]) -> None:
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here leaks out of the namespace
    held = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)  # reachable even once a hidden folder covers it
    if os.path.isdir("/dev/shm"):
        _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m")
    for path in hide:
        inside = workdir == path or workdir.startswith(path.rstrip("/") + "/")
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | (0 if inside else MS_RDONLY), "size=64k,mode=0555")
            if inside:  # the submission's own folder, alone, in an otherwise empty folder
                os.makedirs(workdir, exist_ok=True)
                _mount(f"/proc/self/fd/{held}", workdir, None, MS_BIND)
                _mount(None, path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "size=64k,mode=0555")
        elif os.path.exists(path):
            _mount("/dev/null", path, None, MS_BIND)
    if not any(workdir == h or workdir.startswith(h.rstrip("/") + "/") for h in hide):
        _mount(workdir, workdir, None, MS_BIND | MS_REC)  # its own mount: stays writable below
    os.close(held)
    keep_writable = {workdir, "/dev/shm", "/proc", "/dev/pts", *hide}
    for point, opts in _mounts():
        if point in keep_writable or point.startswith("/proc/"):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for name, bit in _KEEP.items():
            if name in opts:
                flags |= bit
        try:
            _mount(None, point, None, flags)
        except OSError:
            if point == "/":
                raise
    probe = os.path.join(os.path.dirname(workdir.rstrip("/")) or "/", f".sandbox-probe-{os.getpid()}")
    try:
        with open(probe, "w"):
            pass
    except OSError:
        return
    os.unlink(probe)
    raise OSError(f"the sandbox could not make {os.path.dirname(workdir)} read-only")


def _drop_privileges() -> None:
    """No capability survives the exec, and none can be gained again (setuid files included)."""
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    try:
        last = int(open("/proc/sys/kernel/cap_last_cap").read())
    except (OSError, ValueError):
        last = 40
    if os.geteuid() == 0:
        _libc.prctl(PR_SET_SECUREBITS, SECBIT_ALL_LOCKED, 0, 0, 0)  # uid 0 no longer means "all capabilities"
        for cap in range(last + 1):
            _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)


def _limit(which, value) -> None:
    if value is None:
        return
    value = int(value)
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib.tooling.sandbox", description=__doc__.splitlines()[0])
    p.add_argument("--isolate", action="store_true", help="set up the mounts (inside fresh namespaces)")
    p.add_argument("--workdir", required=True)
    p.add_argument("--hide", action="append", default=[])
    p.add_argument("--mem-mb", type=float, default=None)
    p.add_argument("--cpu-seconds", type=float, default=None)
    p.add_argument("--file-mb", type=float, default=256)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        p.error("no command after --")
    workdir = os.path.realpath(args.workdir)
    if args.isolate:
        _isolate(workdir, [os.path.realpath(h) for h in args.hide])
    os.chdir(workdir)
    if args.mem_mb:
        _limit(resource.RLIMIT_DATA, args.mem_mb * 2**20)
    if args.cpu_seconds:
        _limit(resource.RLIMIT_CPU, args.cpu_seconds)
    _limit(resource.RLIMIT_FSIZE, args.file_mb * 2**20)
    _limit(resource.RLIMIT_CORE, 0)
    _drop_privileges()
    os.execvp(cmd[0], cmd)
    return 127  # not reached


def isolation_available() -> bool:
    """True when this machine lets the grader build the namespaces (checked once, ~50 ms)."""
    global _AVAILABLE
    if _AVAILABLE is None:
        exe = shutil.which("unshare")
        if exe is None or not sys.platform.startswith("linux"):
            _AVAILABLE = False
        else:
            try:
                probe = subprocess.run(
                    [*UNSHARE, sys.executable, "-c",
                     "import course_lib.tooling.sandbox as s; s._mount(None, '/', None, s.MS_REC | s.MS_PRIVATE)"],
                    capture_output=True, timeout=30)
                _AVAILABLE = probe.returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                _AVAILABLE = False
    return _AVAILABLE


_AVAILABLE = None


def command(cmd: list[str], workdir: str, hide=(), mem_mb=None, cpu_seconds=None, isolate=None) -> list[str]:
    """The argv that runs ``cmd`` in ``workdir`` under the sandbox (isolated when available)."""
    isolate = isolation_available() if isolate is None else isolate
    inner = [sys.executable, "-m", "course_lib.tooling.sandbox", "--workdir", str(workdir)]
    if isolate:
        inner.append("--isolate")
        for h in hide:
            inner += ["--hide", str(h)]
    if mem_mb:
        inner += ["--mem-mb", str(mem_mb)]
    if cpu_seconds:
        inner += ["--cpu-seconds", str(cpu_seconds)]
    inner += ["--", *cmd]
    return [*UNSHARE, *inner] if isolate else inner


if __name__ == "__main__":
    sys.exit(main())

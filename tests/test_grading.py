"""The grader against honest, wrong, broken and adversarial submissions (real kernels).

The fixture course has three exercises: add (2 points), square (3), double (1, with torch).
One class of submissions is graded once (module fixture, two at a time) and each test reads
its rows; the cases that need their own run (limits, interruption, serial vs parallel) run
alone.
"""
import copy
import csv
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from course_lib.tooling import exercises, grading, notebooks, sandbox
from course_lib.__main__ import main
from submissions import ADD, DOUBLE, FULL, SQUARE, exercise, grade_index, honest, solve

FIXTURE = Path(__file__).parent / "fixtures" / "solutions" / "01_demo.py"
ISOLATED = sandbox.unavailable() is None
needs_isolation = pytest.mark.skipif(not ISOLATED, reason=f"no sandbox here: {sandbox.unavailable()}")
BOX = {} if ISOLATED else {"sandbox": False}  # where bubblewrap cannot run, the unsandboxed grader is tested

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """solutions/ and exercises/ built from the fixture, and an empty subs/ folder."""
    root = tmp_path_factory.mktemp("course")
    (root / "solutions").mkdir()
    (root / "subs").mkdir()
    shutil.copy(FIXTURE, root / "solutions" / "01_demo.py")
    notebooks.sync(("solutions",), root=root)
    exercises.generate("solutions", "exercises", root=root)
    return root


def after(nb, name, code):
    """Insert a code cell right after exercise ``name``'s grade cell."""
    nb.cells.insert(grade_index(nb, name) + 1, nbformat.v4.new_code_cell(code))
    return nb


def before(nb, name, code):
    nb.cells.insert(grade_index(nb, name), nbformat.v4.new_code_cell(code))
    return nb


def save(folder, nb, name):
    path = Path(folder) / name
    nbformat.write(nb, path)
    return str(path)


def scores(results, sub=None):
    return {r.exercise: r.points for r in results if sub is None or r.submission == sub}


def rows_of(results, sub):
    return [r for r in results if r.submission == sub]


LINGER = ("import subprocess, sys\n"
          "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)  # lingering-{tag}'],"
          " start_new_session=True)")


def running(tag: str) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f"lingering-{tag}".encode() in (entry / "cmdline").read_bytes():
                    return True
            except OSError:
                pass
    return False


@pytest.fixture(scope="module")
def klass(course, tmp_path_factory):
    """A class of submissions, graded once, two at a time, with feedback kept."""
    subs = course / "subs"
    s = {}
    shutil.copy(course / "solutions" / "01_demo.ipynb", subs / "01_demo.ipynb")
    s["solution"] = str(subs / "01_demo.ipynb")                        # found by file name
    s["untouched"] = save(subs, exercise(course), "untouched.ipynb")   # found by metadata
    s["one_right"] = save(subs, solve(exercise(course), "square", SQUARE), "one_right.ipynb")
    # Passes the self-check of add but not its hidden tests, guts the grade cell and raises its points.
    nb = solve(honest(course), "add", "def add(a, b):\n    return 3")
    nb.cells[grade_index(nb, "add")].source = "pass"
    nb.cells[grade_index(nb, "add")].metadata["grade"]["points"] = 100
    nb.cells[grade_index(nb, "square")].metadata["tags"] = ["skip-execution"]
    s["tampered"] = save(subs, nb, "tampered.ipynb")
    nb = honest(course)
    del nb.cells[grade_index(nb, "square")]
    s["deleted"] = save(subs, nb, "deleted_grade_cell.ipynb")
    s["crash"] = save(subs, after(honest(course), "add", "import os\nos._exit(1)"), "crash.ipynb")
    # A correct notebook under another name, its metadata stripped: found by its exercises.
    nb = honest(course)
    nb.metadata.pop("course", None)
    s["renamed"] = save(subs, nb, "homework_alice.ipynb")
    # Patching tricks: every one leaves wrong answers that the kernel's own checks would pass.
    wrong = "def add(a, b):\n    return 0"
    s["allclose"] = save(subs, solve(solve(exercise(course), "add", wrong), "double",
                                     "import torch\ntorch.allclose = lambda *a, **k: True\n"
                                     "torch.Tensor.all = lambda self, *a, **k: torch.tensor(True)\n"
                                     "def double(t):\n    return t"), "patch_allclose.ipynb")
    s["transformer"] = save(subs, before(solve(exercise(course), "add", wrong), "add",
                                         "get_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])"),
                            "input_transformer.ipynb")
    s["record"] = save(subs, before(solve(exercise(course), "add", wrong), "add",
                                    "import course_lib.tooling.checks as c\nc.record = lambda *a, **k: None\n"
                                    "import builtins\nbuiltins.record = lambda *a, **k: None\nrecord = builtins.record"),
                       "patch_record.ipynb")
    s["eq"] = save(subs, solve(exercise(course), "add", "class Yes(int):\n    def __eq__(self, other):\n        return True\n"
                                                        "    __hash__ = int.__hash__\n\n\ndef add(a, b):\n    return Yes(0)"),
                   "always_equal.ipynb")
    s["solution_code"] = save(subs, before(exercise(course), "add",
                                           f"exec(open({str(course / 'solutions' / '01_demo.py')!r}).read())"),
                              "runs_the_solution.ipynb")
    # Adversaries against classmates and the grader (their own score does not matter here).
    victim = subs / "victim_notes.txt"
    if not ISOLATED:  # without namespaces nothing stops these: the README says so
        del s["solution_code"]
    victim.write_text("mine\n")
    s["vandal"] = ISOLATED and save(subs, before(honest(course), "add",
                                    f"import pathlib\nfor p in pathlib.Path({str(subs)!r}).glob('*'):\n"
                                    "    try:\n        p.write_text('')\n    except OSError:\n        pass\n"
                                    f"try:\n    open({str(course / 'solutions' / '01_demo.py')!r}, 'a').write('\\nassert False')\n"
                                    "except OSError:\n    pass\n"
                                    f"try:\n    open({str(Path(grading.__file__))!r}, 'a').write('#')\nexcept OSError:\n    pass\n"
                                    "open('torch.py', 'w').write('raise ImportError(\"planted\")')"),
                       "vandal.ipynb")
    (subs / "torch.py").write_text("raise ImportError('planted by a student')\n")  # a module next to everyone
    tag = f"{os.getpid()}"
    s["linger"] = save(subs, before(honest(course), "add", LINGER.format(tag=tag)), "lingering.ipynb")
    s["after_vandal"] = save(subs, honest(course), "zz_after_vandal.ipynb")
    (subs / "garbage.ipynb").write_text("this is not a notebook\n")
    s["garbage"] = str(subs / "garbage.ipynb")
    s["missing"] = str(subs / "does_not_exist.ipynb")
    keep = tmp_path_factory.mktemp("feedback")
    csv_path = tmp_path_factory.mktemp("out") / "grades.csv"
    solution_before = (course / "solutions" / "01_demo.py").read_text()
    s = {k: v for k, v in s.items() if v}
    start = time.monotonic()
    results = grading.grade(list(s.values()), solutions_dir=course / "solutions", timeout=120, quiet=True, jobs=2,
                            csv_path=csv_path, keep_dir=keep, **BOX)
    return dict(subs=s, results=results, seconds=time.monotonic() - start, keep=keep, csv=csv_path, tag=tag,
                victim=victim, solution_before=solution_before, course=course)


def test_solution_full_marks_and_untouched_zero(klass):
    s, res = klass["subs"], klass["results"]
    assert scores(res, s["solution"]) == FULL
    assert scores(res, s["untouched"]) == {"add": 0, "square": 0, "double": 0}
    assert all("NotImplementedError" in r.message and r.status == "failed" for r in rows_of(res, s["untouched"]))
    # the grade cell raised before recording: the hint of the first hidden test it did not reach, and the error
    [add] = [r for r in rows_of(res, s["untouched"]) if r.exercise == "add"]
    assert "add(-1, 1) should be 0" in add.message and "was not reached" in add.message
    assert scores(res, s["one_right"]) == {"add": 0, "square": 3, "double": 0}


def test_tampered_and_deleted_grade_cells_get_the_hidden_tests(klass):
    s, res = klass["subs"], klass["results"]
    assert scores(res, s["tampered"]) == {"add": 0, "square": 3, "double": 1}
    assert [r.max_points for r in rows_of(res, s["tampered"])] == [2, 3, 1]
    assert scores(res, s["deleted"]) == FULL


def test_dead_kernel_keeps_earlier_points_and_says_crashed(klass):
    rows = rows_of(klass["results"], klass["subs"]["crash"])
    assert [(r.exercise, r.points, r.status) for r in rows] == [
        ("add", 2, "passed"), ("square", 0, "crashed"), ("double", 0, "crashed")]


def test_renamed_submission_without_metadata_is_recognised(klass):
    assert scores(klass["results"], klass["subs"]["renamed"]) == FULL


@pytest.mark.parametrize("case", ["allclose", "transformer", "record", "eq",
                                  pytest.param("solution_code", marks=needs_isolation)])
def test_tricks_inside_the_kernel_earn_nothing(klass, case):
    got = scores(klass["results"], klass["subs"][case])
    assert got["add"] == 0, f"{case}: a wrong add scored"
    if case == "allclose":
        assert got["double"] == 0 and got["square"] == 0


def test_hidden_test_feedback_says_what_was_expected(klass):
    [row] = [r for r in rows_of(klass["results"], klass["subs"]["allclose"]) if r.exercise == "double"]
    assert row.status == "failed" and "each entry of t times two" in row.message and "difference" in row.message
    assert "assert" not in row.message, "feedback gives the expectation, not the test code"


@needs_isolation
def test_classmates_files_solutions_and_grader_are_untouchable(klass):
    s, res, course = klass["subs"], klass["results"], klass["course"]
    assert klass["victim"].read_text() == "mine\n"
    assert (course / "solutions" / "01_demo.py").read_text() == klass["solution_before"]
    for key in ("solution", "renamed", "after_vandal"):
        assert nbformat.read(s[key], as_version=4).cells, f"{key}'s notebook was emptied"
    assert scores(res, s["after_vandal"]) == FULL, "a student graded after the vandal lost points"
    assert scores(res, s["solution_code"])["add"] == 0, "the solutions folder was readable"


def test_a_planted_module_changes_nobody_else(klass):
    # torch.py next to the submissions, and one written by the vandal in its own folder
    assert scores(klass["results"], klass["subs"]["after_vandal"]) == FULL
    assert scores(klass["results"], klass["subs"]["solution"]) == FULL


def test_a_lingering_process_is_killed_before_results_are_recorded(klass):
    assert scores(klass["results"], klass["subs"]["linger"]) == FULL
    assert not running(klass["tag"]), "a process started by a submission outlived its grading"


def test_unreadable_submissions_are_named_and_worth_their_real_points(klass):
    s, res = klass["subs"], klass["results"]
    missing = rows_of(res, s["missing"])
    assert [(r.exercise, r.status) for r in missing] == [("<error: file not found>", "error")]
    garbage = rows_of(res, s["garbage"])
    assert all(r.status == "error" for r in garbage)
    # garbage.ipynb cannot be told apart by name: one row; with --exercise it gets the real points
    [row] = grading.grade([s["garbage"]], solutions_dir=klass["course"] / "solutions", quiet=True,
                          exercise="01_demo", **BOX)[:1]
    assert (row.points, row.max_points, row.status) == (0, 2, "error")


def test_csv_written_in_order_with_status_and_feedback_kept(klass):
    with open(klass["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(grading.CSV_COLUMNS)
    assert [r["submission"] for r in rows][:3] == [klass["subs"]["solution"]] * 3
    assert {r["status"] for r in rows} >= {"passed", "failed", "crashed", "error"}
    name = grading._safe_name(Path(klass["subs"]["one_right"]))
    text = (klass["keep"] / f"{name}.feedback.md").read_text()
    assert "3 / 3" in text and "NotImplementedError" in text and "Total: 3 / 6" in text
    executed = nbformat.read(klass["keep"] / f"{name}.executed.ipynb", as_version=4)
    assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")


def test_memory_and_printing_hogs_are_bounded(course, tmp_path):
    hog = save(tmp_path, after(honest(course), "add", "x = bytearray(6 * 2**30)\nx[::4096] = b'1' * len(x[::4096])"),
               "memory_hog.ipynb")
    printer = save(tmp_path, after(honest(course), "add", "for _ in range(200_000):\n    print('x' * 500)"),
                   "printing_hog.ipynb")
    before_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = grading.grade([hog, printer], solutions_dir=course / "solutions", quiet=True, timeout=120, memory_mb=1500,
                        keep_dir=tmp_path / "kept", **BOX)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_peak) / 1024
    assert scores(res, hog) == FULL, "a MemoryError in the student's own cell costs nothing else"
    assert scores(res, printer) == FULL
    assert grown_mb < 300, f"the grader grew by {grown_mb:.0f} MB"
    kept = nbformat.read(tmp_path / "kept" / f"{grading._safe_name(Path(printer))}.executed.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in kept.cells if c.cell_type == "code" for o in c.outputs)
    assert len(text) < 1_000_000 and "bytes of output not kept" in text


def test_an_infinite_loop_scores_the_same_under_either_limit(course, tmp_path):
    looping = save(tmp_path, after(honest(course), "add", "while True:\n    pass"), "loop.ipynb")
    stubborn = save(tmp_path, after(honest(course), "add",
                                    "while True:\n    try:\n        while True:\n            print('x' * 100)\n"
                                    "    except KeyboardInterrupt:\n        pass"), "stubborn.ipynb")
    expected = {"add": 2, "square": 0, "double": 0}
    # limits well above the few seconds the cells before the loop take on a busy machine (torch import)
    for kwargs in (dict(timeout=25), dict(timeout=120, cell_timeout=12)):
        res = grading.grade([looping, stubborn], solutions_dir=course / "solutions", quiet=True, jobs=2, **kwargs,
                            **BOX)
        assert scores(res, looping) == expected == scores(res, stubborn), kwargs
        assert all(r.status == "timeout" for r in res if r.exercise != "add"), kwargs


def test_parallel_grading_gives_the_serial_csv(course, tmp_path):
    subs = [save(tmp_path, honest(course), "a.ipynb"), save(tmp_path, exercise(course), "b.ipynb"),
            save(tmp_path, solve(exercise(course), "square", SQUARE), "c.ipynb")]
    serial, parallel = tmp_path / "serial.csv", tmp_path / "parallel.csv"
    grading.grade(subs, solutions_dir=course / "solutions", quiet=True, jobs=1, csv_path=serial, **BOX)
    grading.grade(subs, solutions_dir=course / "solutions", quiet=True, jobs=3, csv_path=parallel, **BOX)
    assert serial.read_text() == parallel.read_text() and serial.read_text().count("\n") == 1 + 3 * 3


def test_ctrl_c_keeps_what_was_graded(course, tmp_path):
    first = save(tmp_path, honest(course), "a_first.ipynb")
    tag = f"int{os.getpid()}"
    slow = save(tmp_path, before(honest(course), "add", LINGER.format(tag=tag) + "\nimport time\ntime.sleep(120)"),
                "b_slow.ipynb")
    out = tmp_path / "grades.csv"
    proc = subprocess.Popen([sys.executable, "-m", "course_lib", "grade", first, slow, "--jobs", "1", "--csv", str(out),
                             "--solutions", str(course / "solutions"), "--quiet", "--feedback", str(tmp_path / "fb"),
                             *([] if ISOLATED else ["--no-sandbox"])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # as from a terminal: pytest-xdist workers ignore SIGINT, and children inherit that
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 1200  # a safety net for a hung run, not a speed test (CI machines are busy)
    while time.monotonic() < deadline and (not out.exists() or first not in out.read_text()):
        time.sleep(0.5)
    while time.monotonic() < deadline and not running(tag):
        time.sleep(0.5)  # the second submission is running
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=1200)
    assert proc.returncode == 130, err
    rows = list(csv.DictReader(out.open()))
    assert [(r["submission"], r["exercise"], r["points"]) for r in rows] == [
        (first, "add", "2"), (first, "square", "3"), (first, "double", "1")]
    time.sleep(1)
    assert not running(tag), "Ctrl-C left the running submission's processes behind"


def test_bad_csv_path_fails_before_grading(course, tmp_path, capsys):
    sub = save(tmp_path, exercise(course), "x.ipynb")
    assert main(["grade", sub, "--csv", str(tmp_path / "no" / "such" / "dir" / "g.csv"),
                 "--solutions", str(course / "solutions"), "--feedback", str(tmp_path / "fb")]) == 2
    err = capsys.readouterr().err
    assert "No such file" in err and "sandbox:" not in err, "it failed before building anything"


def test_cli_folder_exercise_flag_gradebook_and_exit_codes(course, tmp_path, capsys):
    folder = tmp_path / "hw"
    folder.mkdir()
    save(folder, honest(course), "alice.ipynb")  # any names, with --exercise
    save(folder, exercise(course), "bob.ipynb")
    out, book = tmp_path / "grades.csv", tmp_path / "book.csv"
    nobox = [] if ISOLATED else ["--no-sandbox"]
    assert main(["grade", str(folder), "--exercise", "01_demo", "--csv", str(out), "--gradebook", str(book),
                 "--solutions", str(course / "solutions"), "--feedback", str(tmp_path / "fb"), "--quiet", *nobox]) == 0
    book_rows = list(csv.DictReader(book.open()))
    assert [(Path(r["submission"]).name, r["add"], r["square"], r["double"], r["total"]) for r in book_rows] == [
        ("alice.ipynb", "2", "3", "1", "6"), ("bob.ipynb", "0", "0", "0", "0")]
    (folder / "carol.ipynb").write_text("{")
    assert main(["grade", str(folder / "carol.ipynb"), "--csv", str(out), "--solutions", str(course / "solutions"),
                 "--feedback", str(tmp_path / "fb"), "--quiet", *nobox]) == 2
    assert "carol.ipynb" in capsys.readouterr().err


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["grade", "--help"])
    text = capsys.readouterr().out
    assert "default: 300" in text and "default: 4096" in text and "--jobs" in text


def test_graded_notebook_and_solution_lookup(course):
    solution = exercises.read_solution(course / "solutions", "01_demo")
    sub = exercise(course)
    sub.metadata["course"] = {"solution": "gone"}
    assert grading.find_solution(sub, "01_demo_alice.ipynb", course / "solutions") == "01_demo"
    assert grading.find_solution(sub, "homework.ipynb", course / "solutions") == "01_demo"  # by its grade cells
    sub.cells = [c for c in sub.cells if "grade" not in c.metadata]
    with pytest.raises(LookupError, match="--exercise"):
        grading.find_solution(sub, "homework.ipynb", course / "solutions")
    bad = copy.deepcopy(exercise(course))
    bad.cells.append(nbformat.v4.new_code_cell("pass", metadata={"grade": {"exercise": "bogus", "points": 9}}))
    nb, where = grading.graded_notebook(bad, solution)
    assert set(where) == {"add", "square", "double"}
    assert "add(-1, 1)" in nb.cells[where["add"][0]].source and where["square"][1] == 3
    assert "grade" not in nb.cells[-1].metadata


def test_release_has_no_solutions(tmp_path):
    from course_lib.tooling.release import release

    root = Path(__file__).resolve().parents[1]
    n = release(tmp_path / "student", root=root)
    assert n > 10 and not (tmp_path / "student" / "solutions").exists()
    assert (tmp_path / "student" / "exercises").is_dir() and (tmp_path / "student" / "course_lib").is_dir()
    assert not (tmp_path / "student" / "tests" / "test_course_exercises.py").exists()
    with pytest.raises(FileExistsError):
        release(tmp_path / "student", root=root)

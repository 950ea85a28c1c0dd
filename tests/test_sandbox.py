"""The grader against issue 19's attacks (tests/attacks/corpus.py) and issue 17's forbidden-call rule.

Escapes earn full marks only if they get hold of the solution; stoppers try to end, hang or swamp
the run; a class with all of them (and honest work beside them) is graded once, two at a time.
No test here measures speed: a stopper fails by leaving the run without a row, or the test hung.
"""
import copy
import csv
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from course_lib.tooling import exercises, grading, notebooks, sandbox
from submissions import ADD, DOUBLE, FULL, SQUARE, exercise, grade_index, honest, solve

from attacks.corpus import ESCAPES, LIMITS, STEAL, STOPPERS, USE, stopper_cell

FIXTURES = Path(__file__).parent / "fixtures" / "solutions"
ZERO = {"add": 0, "square": 0, "double": 0}
WHY = sandbox.unavailable()
pytestmark = [pytest.mark.timeout(1800),
              pytest.mark.skipif(WHY is not None, reason=f"no sandbox here ({WHY}): the grader refuses to run")]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course repository (git, as a teacher's is) with the two fixture solutions."""
    root = tmp_path_factory.mktemp("repo")
    (root / "solutions").mkdir()
    for name in ("01_demo.py", "02_forbid.py"):
        shutil.copy(FIXTURES / name, root / "solutions" / name)
    notebooks.sync(("solutions",), root=root)
    exercises.generate("solutions", "exercises", root=root)
    if shutil.which("git"):
        git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run([*git, "init", "-q"], check=True)
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", "course"], check=True)
    return root


def before_each_grade_cell(nb, code):
    for name in ("double", "square", "add"):
        nb.cells.insert(grade_index(nb, name), nbformat.v4.new_code_cell(code))
    return nb


def escape(course, attack: str, fill: dict):
    """The untouched notebook, the attack at the top, the stolen functions (if any) used by every grade cell."""
    nb = before_each_grade_cell(exercise(course), USE)
    code = ESCAPES.get(attack) or LIMITS[attack]
    for key, value in fill.items():
        code = code.replace("{" + key + "}", str(value))
    prelude = STEAL.replace("{functions}", repr({"add", "square", "double"}))
    nb.cells.insert(0, nbformat.v4.new_code_cell(prelude + "\n" + code))
    return nb


def save(folder, nb, name):
    path = Path(folder) / name
    nbformat.write(nb, path)
    return str(path)


def scores(results, sub):
    return {r.exercise: r.points for r in results if r.submission == sub}


def rows_of(results, sub):
    return [r for r in results if r.submission == sub]


@pytest.fixture(scope="module")
def klass(course, tmp_path_factory):
    subs = tmp_path_factory.mktemp("class")
    feedback = tmp_path_factory.mktemp("feedback")
    fill = {"course": course, "subs": subs, "feedback": feedback, "grader_tmp": "/tmp/course-grading-*",
            "grading_py": Path(grading.__file__).resolve(), "stem": "01_demo"}
    s = {}
    # a slow honest classmate first: its kernel (functions defined) is alive while the others run
    slow = honest(course)
    slow.cells.append(nbformat.v4.new_code_cell("import time\ntime.sleep(30)"))
    s["slow_honest"] = save(subs, slow, "01_demo_slow.ipynb")
    for attack in ESCAPES:
        s[attack] = save(subs, escape(course, attack, fill), f"01_demo_{attack}.ipynb")
    shutil.copy(course / "solutions" / "01_demo.ipynb", subs / "01_demo_solution.ipynb")  # a classmate's answers
    s["solution_copy"] = str(subs / "01_demo_solution.ipynb")
    os.symlink(course / "solutions" / "01_demo.ipynb", subs / "01_demo_link_abs.ipynb")
    os.symlink(os.path.relpath(course / "solutions" / "01_demo.ipynb", subs), subs / "01_demo_link_rel.ipynb")
    s["symlink_abs"], s["symlink_rel"] = str(subs / "01_demo_link_abs.ipynb"), str(subs / "01_demo_link_rel.ipynb")
    for attack in STOPPERS:
        nb = honest(course)
        nb.cells.insert(grade_index(nb, "add"), nbformat.v4.new_code_cell(stopper_cell(attack)))
        s[attack] = save(subs, nb, f"01_demo_{attack}.ipynb")
    raw = json.loads(nbformat.writes(honest(course)))
    del raw["cells"][0]["cell_type"]
    (subs / "01_demo_no_cell_type.ipynb").write_text(json.dumps(raw))
    s["no_cell_type"] = str(subs / "01_demo_no_cell_type.ipynb")
    s["hal ice"] = save(subs, honest(course), "01_demo hal ice.ipynb")
    s["hal_ice"] = save(subs, honest(course), "01_demo_hal_ice.ipynb")
    nb = honest(course)
    first_md = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown")
    nb.cells[first_md].metadata["grade"] = copy.deepcopy(nb.cells[grade_index(nb, "add")].metadata["grade"])
    s["grade_tag_on_markdown"] = save(subs, nb, "01_demo_grade_tag_on_markdown.ipynb")
    nb = honest(course)
    nb.metadata["course"] = {"solution": "02_forbid"}
    s["metadata_says_other"] = save(subs, nb, "01_demo_metadata.ipynb")
    # the forbidden-call rule (exercise kl of 02_forbid: 2 points)
    right = "0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)"
    forb = {
        "own_code": f"def kl(mu, logvar):\n    return {right}",
        "imported": "from course_lib.losses import gaussian_kl\n\n\ndef kl(mu, logvar):\n    return gaussian_kl(mu, logvar)",
        "aliased": "import course_lib.losses as L\n\n\ndef kl(mu, logvar):\n    return L.gaussian_kl(mu, logvar)",
        "importlib": ("import importlib\n\n\ndef kl(mu, logvar):\n    m = importlib.import_module('course_lib.' + 'loss' + 'es')\n"
                      "    return getattr(m, 'gaussian' + '_kl')(mu, logvar)"),
        "module_rule": ("import importlib\n\n\ndef kl(mu, logvar):\n"
                        "    importlib.import_module('course_lib.distri' + 'butions.von_mises_fisher').log_bessel_iv(0.5, mu.abs() + 1)\n"
                        f"    return {right}"),
        "guard_off": ("import importlib, sys\n\n\ndef kl(mu, logvar):\n    sys.setprofile(None)\n"
                      "    return getattr(importlib.import_module('course_lib.' + 'losses'), 'gaussian' + '_kl')(mu, logvar)"),
        "allowed_helper": ("from course_lib.losses import per_example_sum\n\n\ndef kl(mu, logvar):\n"
                           "    return per_example_sum(0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar))"),
    }
    for key, code in forb.items():
        s[f"forbid_{key}"] = save(subs, solve(exercise(course, "02_forbid"), "kl", code), f"02_forbid_{key}.ipynb")
    paths = list(s.values()) + [s["slow_honest"]]  # one path given twice
    out = io.StringIO()
    csv_path = tmp_path_factory.mktemp("out") / "grades.csv"
    results = grading.grade(paths, solutions_dir=course / "solutions", timeout=240, quiet=True, jobs=2, err=out,
                            csv_path=csv_path, keep_dir=feedback)
    return dict(subs=s, results=results, feedback=feedback, csv=csv_path, err=out.getvalue(), course=course)


def test_every_submission_has_rows_and_the_run_completes(klass):
    s, res = klass["subs"], klass["results"]
    graded = {r.submission for r in res}
    assert graded == set(s.values()), f"no rows for {set(s.values()) - graded}"
    with open(klass["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(res) and len(res) > len(s)
    assert [r.submission for r in res].count(s["slow_honest"]) == 3, "a path given twice is graded once"


def test_honest_work_scores_exactly(klass):
    s, res = klass["subs"], klass["results"]
    for key in ("slow_honest", "solution_copy", "hal ice", "hal_ice", "grade_tag_on_markdown"):
        assert scores(res, s[key]) == FULL, key
    assert scores(res, s["metadata_says_other"]) == FULL, "the file name decides, not the notebook's metadata"


@pytest.mark.parametrize("attack", list(ESCAPES))
def test_escapes_earn_nothing(klass, attack):
    got = scores(klass["results"], klass["subs"][attack])
    assert got == ZERO, f"{attack}: the escape worked ({got})"


@pytest.mark.parametrize("link", ["symlink_abs", "symlink_rel"])
def test_a_symlink_is_refused(klass, link):
    rows = rows_of(klass["results"], klass["subs"][link])
    assert rows and all(r.points == 0 and r.status == "error" and "symbolic link" in r.message for r in rows)
    assert [r.exercise for r in rows] == ["add", "square", "double"]


@pytest.mark.parametrize("attack", list(STOPPERS))
def test_stoppers_cost_only_their_own_exercise(klass, attack):
    rows = rows_of(klass["results"], klass["subs"][attack])
    got = {r.exercise: r.points for r in rows}
    # a records folder replaced by a link stays replaced: the later exercises' values cannot be read either
    expected = ZERO if attack == "symlinked_records" else {"add": 0, "square": 3, "double": 1}
    assert got == expected, f"{attack}: {[(r.exercise, r.status, r.message) for r in rows]}"
    [add] = [r for r in rows if r.exercise == "add"]
    assert add.status == "failed" and add.message


def test_a_malformed_notebook_is_an_error_row(klass):
    rows = rows_of(klass["results"], klass["subs"]["no_cell_type"])
    assert rows and all(r.status == "error" and r.points == 0 for r in rows)
    assert "not a valid notebook" in rows[0].message


def test_messages_carry_no_control_characters_and_csv_no_formulas(klass):
    [row] = [r for r in rows_of(klass["results"], klass["subs"]["control_characters"]) if r.exercise == "add"]
    assert "HYPERLINK" in row.message and not any(ord(c) < 32 or 0x7f <= ord(c) < 0xa0 for c in row.message)
    text = klass["csv"].read_text()
    assert "\x1b" not in text and "\x07" not in text
    buf = io.StringIO()
    grading.write_csv([grading.Result("=HYPERLINK(\"http://x\")", "add", 0, 2, "failed", "@SUM(A1)\x1b[2J")], buf)
    row = list(csv.DictReader(io.StringIO(buf.getvalue())))[0]
    assert row["submission"].startswith("'=") and row["message"].startswith("'@") and "\x1b" not in row["message"]


def test_feedback_is_unique_per_submission_and_hides_the_hidden_tests(klass):
    s, fb = klass["subs"], klass["feedback"]
    files = sorted(fb.glob("*.feedback.md"))
    graded = {r.submission for r in klass["results"] if r.status != "error"}
    assert len(files) == len(graded), "two submissions share a feedback file"
    for path in fb.glob("*.executed.ipynb"):
        text = path.read_text()
        assert "HIDDEN TESTS" not in text and 'record("add(-1, 1)"' not in text and "__course_guard" not in text, path
    name = grading._safe_name(Path(s["hal ice"]))
    assert name != grading._safe_name(Path(s["hal_ice"])) and (fb / f"{name}.feedback.md").exists()


def test_the_output_says_what_is_isolated_and_which_limits_hold(klass):
    assert "sandbox: bubblewrap" in klass["err"] and "network" in klass["err"]
    assert "per submission" in klass["err"] or "per process" in klass["err"]


@pytest.mark.parametrize("case,points", [("own_code", 2), ("allowed_helper", 2), ("imported", 0), ("aliased", 0),
                                         ("importlib", 0), ("module_rule", 0), ("guard_off", 0)])
def test_forbidden_calls_earn_nothing(klass, case, points):
    [row] = rows_of(klass["results"], klass["subs"][f"forbid_{case}"])
    assert row.points == points, (case, row.status, row.message)
    if points == 0:
        assert row.status == "failed"
        if case in ("imported", "aliased", "importlib"):
            assert "must be answered without calling course_lib.losses.gaussian_kl" in row.message
        if case == "module_rule":
            assert "without calling course_lib.distributions" in row.message


@pytest.fixture(scope="module")
def limited(course, tmp_path_factory):
    subs = tmp_path_factory.mktemp("limits")
    s = {attack: save(subs, escape(course, attack, {}), f"01_demo_{attack}.ipynb") for attack in LIMITS}
    s["honest"] = save(subs, honest(course), "01_demo_honest.ipynb")
    limits = sandbox.Limits(memory_mb=1000, pids=64, disk_mb=64, tmp_mb=32)
    results = grading.grade(list(s.values()), solutions_dir=course / "solutions", timeout=240, quiet=True, jobs=1,
                            limits=limits, err=io.StringIO())
    return s, results


@pytest.mark.parametrize("attack", list(LIMITS))
def test_limits_hold_for_the_whole_submission(limited, attack):
    s, res = limited
    assert scores(res, s["honest"]) == FULL
    assert scores(res, s[attack]) == ZERO, f"{attack}: the limit did not hold"


def test_static_check_finds_imports_and_attribute_chains():
    from course_lib.tooling.forbidden import static_uses

    rule = ["course_lib.losses.gaussian_kl", "course_lib.models.autoregressive"]
    assert static_uses(["from course_lib.losses import gaussian_kl as g"], rule) == ["course_lib.losses.gaussian_kl"]
    assert static_uses(["import course_lib\nx = course_lib.losses.gaussian_kl"], rule) == ["course_lib.losses.gaussian_kl"]
    assert static_uses(["from course_lib import losses\ngetattr(losses, 'gaussian_kl')"], rule)
    assert static_uses(["from course_lib.models.autoregressive import PixelCNN"], rule) == [
        "course_lib.models.autoregressive"]
    assert static_uses(["from course_lib.losses import *"], rule) == ["course_lib.losses.gaussian_kl"]
    assert static_uses(["from course_lib.losses import per_example_sum\n%time x = 1"], rule) == []
    assert static_uses(["def f(:"], rule) == []


def test_refuses_to_run_unsandboxed_unless_told(course, tmp_path, monkeypatch, capsys):
    from course_lib.__main__ import main

    monkeypatch.setitem(sandbox._UNAVAILABLE, "", "bubblewrap (bwrap) is not installed")
    sub = save(tmp_path, exercise(course), "01_demo.ipynb")
    with pytest.raises(RuntimeError, match="apt-get install bubblewrap"):
        grading.Grader(course / "solutions")
    assert main(["grade", sub, "--solutions", str(course / "solutions"), "--feedback", str(tmp_path / "fb")]) == 2
    assert "docker run --network none" in capsys.readouterr().err
    res = grading.grade([sub], solutions_dir=course / "solutions", quiet=True, sandbox=False, err=io.StringIO())
    assert scores(res, sub) == ZERO


def test_the_escapes_are_live_without_the_sandbox(course, tmp_path):
    """The corpus is not toothless: unsandboxed (--no-sandbox), the file-system escapes earn full marks."""
    subs = tmp_path / "class"
    subs.mkdir()
    shutil.copy(course / "solutions" / "01_demo.ipynb", subs / "01_demo_classmate.ipynb")
    fill = {"course": course, "subs": subs, "feedback": tmp_path / "fb", "grader_tmp": "/tmp/course-grading-*",
            "grading_py": Path(grading.__file__).resolve(), "stem": "01_demo"}
    s = {attack: save(subs, escape(course, attack, fill), f"01_demo_{attack}.ipynb")
         for attack in ("git_solutions", "classmates", "host_files")}
    res = grading.grade(list(s.values()), solutions_dir=course / "solutions", timeout=240, quiet=True, jobs=1,
                        sandbox=False, err=io.StringIO())
    for attack, path in s.items():
        assert scores(res, path) == FULL, f"{attack} does not escape even without the sandbox"


def test_a_solution_that_breaks_its_own_rule_is_refused(tmp_path):
    """The reference run is judged like a submission: a solution calling what its grade cell forbids is broken."""
    (tmp_path / "solutions").mkdir()
    text = (FIXTURES / "02_forbid.py").read_text()
    (tmp_path / "solutions" / "02_forbid.py").write_text(text)
    ref = grading.reference_run(tmp_path / "solutions", "02_forbid")
    assert ref.forbidden == {"kl": ["course_lib.losses.gaussian_kl", "course_lib.distributions"]}
    assert [r["name"] for r in ref.records["kl"]] == ["kl(mu, logvar)"]
    body = "    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)"
    assert body in text
    cheat = text.replace(body, "    import importlib\n    return getattr(importlib.import_module('course_lib.losses'), "
                               "'gaussian_kl')(mu, logvar)")
    (tmp_path / "solutions" / "02_forbid.py").write_text(cheat)
    with pytest.raises(RuntimeError, match="without calling course_lib.losses.gaussian_kl"):
        grading.reference_run(tmp_path / "solutions", "02_forbid")
    # an import in the answer's cell is refused without running it ...
    (tmp_path / "solutions" / "02_forbid.py").write_text(
        text.replace(body, "    from course_lib.losses import gaussian_kl\n" + body, 1))
    with pytest.raises(RuntimeError, match="uses course_lib.losses.gaussian_kl"):
        grading.reference_run(tmp_path / "solutions", "02_forbid")
    # ... while the course's own cells (set-up, self-check) may use it as a reference
    check = "assert torch.allclose(kl(_m, _lv), 0.5"
    assert check in text
    (tmp_path / "solutions" / "02_forbid.py").write_text(text.replace(
        check, "from course_lib.losses import gaussian_kl\nassert torch.allclose(kl(_m, _lv), gaussian_kl(_m, _lv))\n" + check, 1))
    ref = grading.reference_run(tmp_path / "solutions", "02_forbid")
    assert [r["name"] for r in ref.records["kl"]] == ["kl(mu, logvar)"]

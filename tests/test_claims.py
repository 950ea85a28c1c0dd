"""The claims sweep: a lesson whose assert holds on one course seed only is reported on the others."""
import nbformat

from course_lib.tooling import claims


def _lesson(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A toy lesson"),
        nbformat.v4.new_code_cell("import torch\nfrom course_lib.runtime import seed_everything, course_seed\n"
                                  "g = seed_everything(0)"),
        # a 'claim' true on course seed 0 only
        nbformat.v4.new_code_cell("assert course_seed() == 0, 'this claim holds on seed 0 only'"),
        nbformat.v4.new_code_cell("raise ValueError('shown on purpose')", metadata={"tags": ["raises-exception"]}),
        nbformat.v4.new_code_cell("x = torch.rand(2, generator=g)\nassert x.shape == (2,)\n"
                                  "print(f'first draw {float(x[0]):.6f} on seed {course_seed()}')"),
    ]
    path = tmp_path / "99_toy.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_sweep_reports_the_claim_that_fails_on_another_seed(tmp_path):
    path = _lesson(tmp_path)
    runs = claims.sweep([path], [0, 1], log=lambda *a, **k: None, timeout=120, cell_timeout=60)
    by_seed = {r.seed: r for r in runs}
    assert by_seed[0].status == "pass" and not by_seed[0].failures
    assert by_seed[1].status == "fail"
    [failure] = by_seed[1].failures  # the expected error of cell 4 is not a failure; cell 5 still ran
    assert failure.cell == 3 and "seed 0 only" in failure.error and failure.first_line.startswith("assert")
    # what each run printed is kept (the spread of a number over seeds is read from the JSON report)
    draws = {s: r.printed.strip() for s, r in by_seed.items()}
    assert draws[0].startswith("first draw ") and draws[0].endswith("on seed 0") and draws[1].endswith("on seed 1")
    assert draws[0].split()[2] != draws[1].split()[2], "another seed, another draw"
    text = claims.report_markdown(runs)
    assert "| 99_toy | pass | FAIL 3 |" in text and "1 of 2 runs passed" in text

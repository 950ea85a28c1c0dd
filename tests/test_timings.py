"""Run times: the README table and each lesson header are written from docs/timings.json, never by hand."""
import json
import re
from pathlib import Path

from course_lib.tooling import timings
from course_lib.tooling.notebooks import repo_root

ROOT = repo_root()


def _fake_repo(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "README.md").write_text(
        "Quick-mode times: typed by hand.\n\n| # | notebook | topic | seeds | quick | full |\n|---|---|---|---|---|---|\n"
        "| 4 | `04_beta_vae` | beta-VAE | 001 | about 30 s + 4 s | not measured |\n")
    (tmp_path / "notebooks" / "04_beta_vae.py").write_text(
        "# %% [markdown]\n# # Lesson 4\n#\n# **Run time** about 30 s, typed by hand\n# on two lines.\n#\n# **Units** nats.\n")
    data = {"machine": "2 CPU cores (test), no GPU", "date": "2026-01-01",
            "lessons": {"04_beta_vae": {"lesson": 47, "exercise": 9}}}
    (tmp_path / "docs" / "timings.json").write_text(json.dumps(data))
    return tmp_path


def test_rewrite_puts_the_measured_figure_in_the_readme_and_the_header(tmp_path):
    root = _fake_repo(tmp_path)
    assert timings.rewrite(root, check=True) == ["README.md", "notebooks/04_beta_vae.py"]
    timings.rewrite(root)
    readme = (root / "README.md").read_text()
    header = (root / "notebooks" / "04_beta_vae.py").read_text()
    assert "| 47 s + 9 s | not measured |" in readme and "2 CPU cores (test), no GPU, 2026-01-01" in readme
    assert "47 s for this notebook" in header and "9 s for its exercise notebook" in header
    assert "typed by hand" not in header and "# **Units** nats." in header  # only the paragraph is replaced
    assert timings.rewrite(root, check=True) == []  # idempotent


def _lesson_seconds(text):
    m = re.search(r"quick mode, the\s*(?:#\s*)?default without a GPU, (\d+) s for this notebook", text.replace("\n# ", " "))
    return int(m.group(1)) if m else None


def test_readme_and_lesson_headers_give_the_same_measured_times():
    data = json.loads((ROOT / timings.TIMINGS).read_text())
    assert timings.rewrite(ROOT, check=True) == [], "run `python -m course_lib timings` (README or a header is stale)"
    readme = (ROOT / "README.md").read_text()
    lessons = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    assert sorted(data["lessons"]) == lessons, "every lesson has a measured time"
    for stem in lessons:
        t = data["lessons"][stem]
        row = next(line for line in readme.splitlines() if line.startswith("| ") and f"`{stem}`" in line)
        assert row.split(" | ")[4] == timings.readme_cell(stem, data)
        assert _lesson_seconds((ROOT / "notebooks" / f"{stem}.py").read_text()) == t["lesson"]

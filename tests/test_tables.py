"""course_lib.tables.Table: the rendered result tables of the lessons (lesson 8's NLL table)."""
import pytest

from course_lib.tables import Table


def _table():
    return Table(["model", "parameters", "test NLL", "published"],
                 [["PixelCNN", 4305, 104.43, "81.30 (van den Oord 2016a)"], ["NADE <b>", 50992, 134.3, None]],
                 title="Test NLL (nats)", formats={"test NLL": "{:.1f}"})


def test_html_has_caption_header_formatted_and_escaped_cells():
    html = _table()._repr_html_()
    assert html.startswith('<table class="course-table"><caption>Test NLL (nats)</caption>')
    assert '<th style="text-align:left">model</th>' in html and '<th style="text-align:right">parameters</th>' in html
    assert '<td style="text-align:right">4,305</td>' in html and '<td style="text-align:right">104.4</td>' in html
    assert "NADE &lt;b&gt;" in html and "<b>" not in html, "cell text is escaped"
    assert '<td style="text-align:left">-</td>' in html, "a missing value shows as -"


def test_text_form_aligns_numbers_right_and_text_left():
    lines = str(_table()).splitlines()
    assert lines[0] == "Test NLL (nats)"
    header, rule, first, second = lines[1:]
    assert header.startswith("model     ") and set(rule) <= {"-", " "}
    assert first.index("104.4") + len("104.4") == second.index("134.3") + len("134.3"), "numbers right-aligned"
    assert first.startswith("PixelCNN") and second.startswith("NADE <b>")
    assert repr(_table()) == str(_table())


def test_bad_rows_and_formats_say_what_to_fix():
    with pytest.raises(ValueError, match="row 1 has 1 values for 2 columns"):
        Table(["a", "b"], [[1, 2], [3]])
    with pytest.raises(ValueError, match="formats name columns that do not exist: \\['c'\\]"):
        Table(["a", "b"], [[1, 2]], formats={"c": "{:.1f}"})

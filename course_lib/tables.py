"""Result tables: a rendered table in JupyterLab, the decks and the site; aligned text anywhere else.

A lesson's key numbers (lesson 8's NLL table, lesson 10's bounds) read better as a table than as
monospace lines printed under the code, and at the slides' type size. ``Table`` is what a cell shows:

    Table(["model", "test NLL"], [["PixelCNN", 104.4], ["NADE", 134.3]], title="Test NLL (nats per image)")

as the cell's last expression (or ``display(table)``). Numbers are formatted with ``formats`` (one
format per column, e.g. ``{"test NLL": "{:.1f}"}``; integers get thousands separators) and aligned
right; ``str(table)`` is the same table as text (what a terminal or a log shows).
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from numbers import Integral, Real

__all__ = ["Table"]


@dataclass
class Table:
    """A small table of results (``columns`` names, ``rows`` of values), shown rendered in a notebook."""

    columns: list
    rows: list
    title: str | None = None
    formats: dict = field(default_factory=dict)

    def __post_init__(self):
        self.columns = [str(c) for c in self.columns]
        self.rows = [list(r) for r in self.rows]
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"row {i} has {len(row)} values for {len(self.columns)} columns "
                                 f"({', '.join(self.columns)}): give one value per column.")
        unknown = set(self.formats) - set(self.columns)
        if unknown:
            raise ValueError(f"formats name columns that do not exist: {sorted(unknown)}; columns: {self.columns}")

    def cell(self, value, column: str) -> str:
        """One value as shown: the column's format if any, thousands separators for integers."""
        if column in self.formats and value is not None and not isinstance(value, str):
            return self.formats[column].format(value)
        if isinstance(value, bool) or value is None:
            return "-" if value is None else str(value)
        if isinstance(value, Integral):
            return f"{value:,}"
        if isinstance(value, Real):
            return f"{value:.4g}"
        return str(value)

    def _numeric(self, j: int) -> bool:
        return all(isinstance(r[j], Real) and not isinstance(r[j], bool) for r in self.rows if r[j] is not None)

    def _repr_html_(self) -> str:
        align = ["right" if self._numeric(j) else "left" for j in range(len(self.columns))]
        head = "".join(f'<th style="text-align:{a}">{html.escape(c)}</th>' for c, a in zip(self.columns, align))
        body = "".join("<tr>" + "".join(f'<td style="text-align:{a}">{html.escape(self.cell(v, c))}</td>'
                                        for v, c, a in zip(row, self.columns, align)) + "</tr>" for row in self.rows)
        caption = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        return f'<table class="course-table">{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

    def __str__(self) -> str:
        cells = [self.columns] + [[self.cell(v, c) for v, c in zip(row, self.columns)] for row in self.rows]
        widths = [max(len(r[j]) for r in cells) for j in range(len(self.columns))]
        numeric = [self._numeric(j) for j in range(len(self.columns))]
        lines = ["  ".join(s.rjust(w) if n else s.ljust(w) for s, w, n in zip(r, widths, numeric)).rstrip()
                 for r in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(([self.title] if self.title else []) + lines)

    def __repr__(self) -> str:
        return str(self)

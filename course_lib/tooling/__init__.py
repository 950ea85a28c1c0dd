"""The course's tooling, kept apart from what the lessons import.

Notebook build (``notebooks``), exercise generation (``exercises``), grading (``grading``,
``sandbox``, ``execution``, ``checks``), the student release (``release``), slides, site and their
browser checks (``slides``, ``site``, ``browser``), ``pretrain``, ``bench``, and the command line
(``cli``, run as ``python -m course_lib``).
"""

"""Each lesson's figure code, one module per lesson topic, kept off the slides.

A lesson shows the few lines that are the idea; the matplotlib plumbing of its figures
(and its "try it" widgets where they are figure-like) lives here:

- :mod:`~course_lib.figures.autoencoders`: lesson 1
- :mod:`~course_lib.figures.elbo`: lesson 2
- :mod:`~course_lib.figures.diagrams`, :mod:`~course_lib.figures.vae`: lessons 3 and 4
- :mod:`~course_lib.figures.evaluation`: lesson 5
- :mod:`~course_lib.figures.cvae`: lesson 6 (also the digit halves and per-class accuracy)
- :mod:`~course_lib.figures.vqvae`: lesson 7
- :mod:`~course_lib.figures.svae`: lesson 9
- :mod:`~course_lib.figures.srvae`: lesson 10

Figures every lesson shares (image grids, loss curves) are in :mod:`course_lib.plots`.
"""

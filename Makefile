# Two commands do all the set-up (see README.md):
#   make lab    install (first time) and open the course in JupyterLab
#   make test   install (first time) and run the whole test suite (quick mode, CPU is fine)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install lab test slides site pretrain claims mutations build grade bench clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

install: $(VENV)/.installed

lab: install
	$(BIN)/jupyter lab

test: install
	$(BIN)/python -m pytest

# Instructors: train and cache every lesson's models in full mode before class.
pretrain: install
	$(BIN)/python -m course_lib pretrain

# Every lesson under course seeds 0-4 (quick mode): each claim a lesson asserts must hold on every seed.
# `make claims CLAIMS_ARGS="--full 04"` runs lesson 4 in full mode; the report is in build/claims/.
CLAIMS_ARGS ?=
claims: install
	$(BIN)/python -m course_lib claims --seeds 0 1 2 3 4 $(CLAIMS_ARGS)

# Every exercise's self-check against the usual mistakes (issue 17): the output-changing mutants it misses.
# `make mutations MUTATIONS_ARGS="07 --all"` lists every mutant of lesson 7; the report is in build/mutations.json.
MUTATIONS_ARGS ?=
mutations: install
	$(BIN)/python -m course_lib mutations --json build/mutations.json $(MUTATIONS_ARGS)

build: install
	$(BIN)/python -m course_lib build

# Offline reveal.js decks (build/slides) and the course site (build/site/html); quick mode.
slides: install
	$(BIN)/python -m course_lib slides

site: install
	$(BIN)/python -m course_lib site

bench: install
	$(BIN)/python -m course_lib bench

clean:
	rm -rf $(VENV) checkpoints .pytest_cache build

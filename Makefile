# The two commands of the README. Both work on a fresh machine: they make .venv, install, and run.
#   make course   the main job: every notebook through papermill, quick mode (executed copies in build/)
#   make test     unit tests + nbval over every committed notebook
#   make lab      open the course in JupyterLab (installed by `make setup`: the [course] extra)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/v4s: pyproject.toml setup.py
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0   # the CPU build; on a GPU machine install your CUDA torch first
	$(BIN)/pip install -q -e ".[test,course]"
	touch $@

.PHONY: setup course test notebooks lab
setup: $(BIN)/v4s

course: setup
	$(BIN)/v4s course

test: setup
	$(BIN)/pytest tests notebooks --nbval --nbval-current-env --nbval-sanitize-with .ci/nbval-sanitize.cfg --timeout=900 --durations=15

# Rebuild (execute) the notebooks from their jupytext sources after changing them or the package.
notebooks: setup
	$(BIN)/python tools/build_notebook.py notebooks/[0-9][0-9]_*.py

# Open the course: JupyterLab on notebooks/ (jupytext opens the .py sources as notebooks too).
lab: setup
	$(BIN)/jupyter lab notebooks/

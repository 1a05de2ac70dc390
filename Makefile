# The two commands of the README. Both work on a fresh machine: they make .venv, install, and run.
#   make course   the main job: every notebook through papermill, quick mode (executed copies in build/)
#   make test     unit tests + nbval over every committed notebook
#   make lab      open the course in JupyterLab (installed by `make setup`: the [course] extra)
#   make site     the executed notebooks as a static HTML site in build/site/ (nbconvert)
#   make browser  Debian's Chromium and ChromeDriver for tests/test_browser.py (root: apt-get; skipped without them)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/v4s: pyproject.toml setup.py
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0   # the CPU build; on a GPU machine install your CUDA torch first
	$(BIN)/pip install -q -e ".[test,course,browser]"
	# the speed peer of benchmarks/bench_wan.py: DiffSynth-Studio's Wan DiT needs only torch and einops, not the
	# package's whole dependency tree (its test is skipped without it)
	$(BIN)/pip install -q --no-deps diffsynth==2.1.12 || echo "diffsynth could not be installed: its benchmark test will be skipped"
	touch $@

.PHONY: setup course test notebooks lab browser site
setup: $(BIN)/v4s

course: setup
	$(BIN)/v4s course

# Two pytest workers (pytest-xdist), each test file (each notebook) whole on one worker: on CI's 2 cores the suite
# takes 18 minutes instead of 23 (many tests leave a core idle: rendering, video IO, kernel start-up). Not -n auto:
# every worker's torch already uses all cores, so more workers than 2 only contend.
test: setup
	$(BIN)/pytest tests notebooks --nbval --nbval-current-env --nbval-sanitize-with .ci/nbval-sanitize.cfg --timeout=900 \
		-n 2 --dist loadfile --durations=15

# Rebuild (execute) the notebooks from their jupytext sources after changing them or the package.
notebooks: setup
	$(BIN)/python tools/build_notebook.py notebooks/[0-9][0-9]_*.py

# Open the course: JupyterLab on notebooks/ (jupytext opens the .py sources as notebooks too).
lab: setup
	$(BIN)/jupyter lab notebooks/

# Chromium + ChromeDriver from Debian for the browser test (JupyterLab driven by Selenium); needs root and apt.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then echo "chromium and chromedriver are installed"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "no root apt-get: tests/test_browser.py will be skipped (install chromium and chromium-driver)"; fi

# The course readable without running it: every executed notebook as a static HTML page, plus an index, in
# build/site/ (open build/site/index.html). Override SITE_PY / SITE_DIR / SITE_NOTEBOOKS to build elsewhere.
SITE_PY ?= $(BIN)/python
SITE_DIR ?= build/site
SITE_NOTEBOOKS ?= $(wildcard notebooks/[0-9][0-9]_*.ipynb)
site:
	$(SITE_PY) -m nbconvert --to html --log-level WARN --output-dir $(SITE_DIR) $(SITE_NOTEBOOKS)
	$(SITE_PY) -c 'import json, pathlib, sys, html; out = pathlib.Path(sys.argv[1]); \
	titles = [(pathlib.Path(p).stem, "".join(json.loads(pathlib.Path(p).read_text())["cells"][0]["source"]).splitlines()[0].lstrip("# ")) for p in sys.argv[2:]]; \
	links = "".join("<li><a href=\"%s.html\">%s</a></li>" % (s, html.escape(t)) for s, t in titles); \
	(out / "index.html").write_text("<!doctype html><meta charset=utf-8><title>v4s-lite: the course</title><h1>v4s-lite: the course</h1><ol>%s</ol>" % links); \
	print("%s/index.html: %d notebooks" % (out, len(titles)))' $(SITE_DIR) $(SITE_NOTEBOOKS)

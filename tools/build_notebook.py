"""Build notebooks from their jupytext sources and execute them in place, as CI will check them.

    python tools/build_notebook.py notebooks/01_world.py [more.py ...]   # or: make notebooks
    python tools/build_notebook.py --prose notebooks/09_reproducing_the_paper.py   # markdown edits only

The `.py` file (jupytext percent format) is what you edit; the `.ipynb` beside it is generated, executed
in a fresh kernel from the notebooks/ folder with the default (quick) parameters, and committed with its
outputs so that nbval can compare a fresh run against them.

`--prose` is for edits to the markdown cells alone (a number in the narrative, a sentence): it copies the
source's cells into the `.ipynb` and keeps every stored output (jupytext's own `--update` merge), without
running anything. It refuses when a code cell changed, since the stored outputs would then describe other code.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import jupytext
import nbformat
from jupytext.combine import combine_inputs_with_outputs
from nbconvert.preprocessors import ExecutePreprocessor


def _from_source(src: Path):
    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)
    return nb


def build(src: Path, timeout: int = 900) -> Path:
    nb = _from_source(src)
    t0 = time.time()
    ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(nb, {"metadata": {"path": str(src.parent)}})
    for cell in nb.cells:  # keep diffs small: no execution timestamps
        cell.metadata.pop("execution", None)
    out = src.with_suffix(".ipynb")
    nbformat.write(nb, out)
    print(f"{out}: executed in {time.time() - t0:.0f} s")
    return out


def build_prose(src: Path) -> Path:
    """Markdown from `src`, outputs from the executed `.ipynb` beside it; code cells must be unchanged."""
    out = src.with_suffix(".ipynb")
    if not out.exists():
        raise SystemExit(f"{out} does not exist yet: build it with execution (without --prose) first")
    old = nbformat.read(out, as_version=4)
    new = _from_source(src)
    code_old = [c.source for c in old.cells if c.cell_type == "code"]
    code_new = [c.source for c in new.cells if c.cell_type == "code"]
    if code_old != code_new:
        i = next((k for k, (a, b) in enumerate(zip(code_old, code_new)) if a != b), min(len(code_old), len(code_new)))
        raise SystemExit(f"{src}: code cell {i + 1} changed (or code cells were added or removed), so the stored "
                         f"outputs no longer match: rebuild with execution, `python {sys.argv[0]} {src}`")
    nb = combine_inputs_with_outputs(new, old)  # metadata: `new`'s (no jupytext section), as `build` writes it
    nbformat.write(nb, out)
    print(f"{out}: markdown updated, {len(code_new)} code cells and their outputs kept")
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    prose = "--prose" in args
    for arg in (a for a in args if a != "--prose"):
        build_prose(Path(arg)) if prose else build(Path(arg))

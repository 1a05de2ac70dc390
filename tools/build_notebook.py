"""Build notebooks from their jupytext sources and execute them in place, as CI will check them.

    python tools/build_notebook.py notebooks/01_world.py [more.py ...]   # or: make notebooks

The `.py` file (jupytext percent format) is what you edit; the `.ipynb` beside it is generated, executed
in a fresh kernel from the notebooks/ folder with the default (quick) parameters, and committed with its
outputs so that nbval can compare a fresh run against them.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbconvert.preprocessors import ExecutePreprocessor


def build(src: Path, timeout: int = 900) -> Path:
    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)
    t0 = time.time()
    ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(nb, {"metadata": {"path": str(src.parent)}})
    for cell in nb.cells:  # keep diffs small: no execution timestamps
        cell.metadata.pop("execution", None)
    out = src.with_suffix(".ipynb")
    nbformat.write(nb, out)
    print(f"{out}: executed in {time.time() - t0:.0f} s")
    return out


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        build(Path(arg))

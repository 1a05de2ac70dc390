"""The course's files (configs, the shipped model, results) found from any working directory.

    from v4s_lite.resources import course_file, shipped_model, results_file
    cfg = load_config(course_file("configs/quick.yaml"))
    model_dir = shipped_model()                      # data/v4s-lite: the trained lite model and its clips
    tables = results_file("lite_tables.json")        # results/lite_tables.json

Where the files come from, first match wins:
1. ``$V4S_COURSE_ROOT`` when set (a clone anywhere, e.g. a mounted Drive folder on Colab);
2. the repository this package was imported from (a clone, ``pip install -e .``): the folder above
   ``v4s_lite/`` holding ``pyproject.toml`` and ``configs/``;
3. the copy inside the installed package, ``v4s_lite/_course/`` (a non-editable ``pip install .`` or
   ``pip install git+REPO_URL``: pyproject.toml maps configs/, data/v4s-lite/ and results/ into the wheel as
   package data, so a fresh Colab runtime gets them from the one install cell).

A missing file raises V4SError naming what was looked for and how to get it. ``REPO_URL`` is the one place the
repository's address is written: the notebooks' install cells and Colab badges use it (tests/test_resources.py
checks that they agree).
"""
from __future__ import annotations

import os
from pathlib import Path

from .utils import V4SError

REPO_URL = "https://github.com/v4s-lite/v4s-lite"
PIP_SPEC = f"git+{REPO_URL}"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"

_PACKAGE_DIR = Path(__file__).resolve().parent
_BUNDLED = _PACKAGE_DIR / "_course"


def colab_url(notebook: str) -> str:
    """The 'Open in Colab' link of a notebook, e.g. colab_url('03_rope.ipynb')."""
    return f"https://colab.research.google.com/github/{REPO_URL.split('github.com/')[1]}/blob/main/notebooks/{notebook}"


def _is_repo(root: Path) -> bool:
    return (root / "pyproject.toml").is_file() and (root / "configs").is_dir() and (root / "v4s_lite").is_dir()


def course_roots() -> list[Path]:
    """Folders searched for course files, in order (see the module docstring)."""
    roots = []
    env = os.environ.get("V4S_COURSE_ROOT")
    if env:
        roots.append(Path(env).expanduser().resolve())
    if _is_repo(_PACKAGE_DIR.parent):
        roots.append(_PACKAGE_DIR.parent)
    if _BUNDLED.is_dir():
        roots.append(_BUNDLED)
    return roots


def course_root() -> Path:
    """The first folder that holds the course's files; V4SError when there is none."""
    roots = course_roots()
    if not roots:
        raise V4SError(_missing_message("the course's files (configs/, data/v4s-lite/, results/)"))
    return roots[0]


def _missing_message(what: str) -> str:
    return (f"{what} not found next to the installed v4s_lite ({_PACKAGE_DIR}) nor in $V4S_COURSE_ROOT. "
            f"Either clone the course (`git clone {REPO_URL}` then `pip install -e .` inside it, or set "
            f"V4S_COURSE_ROOT=/path/to/the/clone), or reinstall from the repository (`pip install {PIP_SPEC}`), "
            "which ships configs/, data/v4s-lite/ and results/ inside the package. In a clone, a deleted file comes "
            "back with `git checkout -- <path>`.")


def course_file(relpath: str, must_exist: bool = True) -> Path:
    """A file or folder of the course by its path in the repository, e.g. course_file('configs/quick.yaml').

    Absolute paths and paths that exist relative to the working directory are returned unchanged, so a student's
    own config keeps working. With must_exist=False the path in the first course root is returned even if absent.
    """
    p = Path(relpath).expanduser()
    if p.is_absolute():
        if must_exist and not p.exists():
            raise V4SError(f"{p} does not exist")
        return p
    if p.exists():  # relative to the working directory: the student's own file
        return p.resolve()
    for root in course_roots():
        if (root / p).exists():
            return root / p
    if must_exist:
        raise V4SError(_missing_message(str(relpath)))
    return course_root() / p


def shipped_model(must_exist: bool = True) -> Path:
    """data/v4s-lite: the course's trained lite model (config.json + weights) and its clips/.

    With must_exist=False returns None when it is absent or incomplete (notebooks skip a section then).
    """
    for root in course_roots():
        d = root / "data" / "v4s-lite"
        if (d / "config.json").is_file() and (d / "diffusion_pytorch_model.safetensors").is_file() and (d / "clips").is_dir():
            return d
    if must_exist:
        raise V4SError(_missing_message("data/v4s-lite (the shipped model: config.json, weights and clips/)"))
    return None


def results_file(name: str, must_exist: bool = True) -> Path:
    """A file of results/, e.g. results_file('lite_tables.json'); None when absent and must_exist=False."""
    try:
        return course_file(str(Path("results") / name))
    except V4SError:
        if must_exist:
            raise
        return None


def read_json(path) -> dict:
    """A JSON file, plain or compressed with xz (a name ending in .xz). results/ keeps its large records compressed, so
    that the tree still travels to a GPU machine (tests/test_device_tree.py)."""
    import json
    import lzma

    path = Path(path)
    if path.suffix == ".xz":
        with lzma.open(path, "rt") as f:
            return json.load(f)
    return json.loads(path.read_text())


def results_json(name: str) -> dict:
    """results/<name> read as JSON, e.g. results_json('gpu_2026-12-06d/lite_tables_test.json'). A record stored
    compressed (`name.xz`) is found under its plain name too, so a reader need not know which records were squeezed."""
    path = results_file(name, must_exist=False)
    if path is None and not name.endswith(".xz"):
        path = results_file(name + ".xz", must_exist=False)
    if path is None:
        results_file(name)  # raises the message that says where results/ was looked for
    return read_json(path)

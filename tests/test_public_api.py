"""What a notebook shows is public API: no notebook source (notebooks/NN_*.py, jupytext) reaches into a v4s_lite
object's private names (`obj._name`). A helper a notebook needs gets a public name and a docstring instead."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# notebook -> why it may still use private helpers. The test fails once an entry is no longer needed.
ALLOWED = {}  # notebook -> why it may still reach into a private name (none left)


def private_uses(path: Path) -> list[str]:
    """`name._private` where `name` is a v4s_lite module or class/function imported from v4s_lite, or a variable
    assigned from calling one (or from a method of one), and `from v4s_lite.x import _private`; dunders are fine."""
    tree = ast.parse(path.read_text())
    ours: set[str] = set()

    def from_ours(node) -> bool:
        while isinstance(node, (ast.Call, ast.Attribute, ast.Subscript)):
            node = node.func if isinstance(node, ast.Call) else node.value
        return isinstance(node, ast.Name) and node.id in ours

    def bind(target):
        for n in ast.walk(target):
            if isinstance(n, ast.Name):
                ours.add(n.id)

    found = []
    for node in ast.walk(tree):  # imports first: the names they bind are known before any use is judged
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "v4s_lite":
            ours.update(a.asname or a.name for a in node.names)
            found += [(node.lineno, f"{path.name}:{node.lineno}: from {node.module} import {a.name}")
                      for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
        elif isinstance(node, ast.Import):
            ours.update((a.asname or a.name).split(".")[0] for a in node.names if a.name.startswith("v4s_lite"))
    for _ in range(3):  # a few passes: a variable made from a variable made from v4s_lite
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and from_ours(node.value):
                for t in node.targets:
                    bind(t)
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                for item in node.items:
                    if item.optional_vars is not None and from_ours(item.context_expr):
                        bind(item.optional_vars)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and from_ours(node.value)):
            found.append((node.lineno, f"{path.name}:{node.lineno}: {ast.unparse(node)}"))
    return [text for _, text in sorted(found)]


def notebook_sources() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def test_notebooks_use_no_private_helpers():
    offenders = [use for p in notebook_sources() if p.name not in ALLOWED for use in private_uses(p)]
    assert not offenders, ("notebooks reach into private v4s_lite names; give the helper a public name (and a "
                           "docstring) in the package: " + "; ".join(offenders))


def test_allow_list_is_still_needed():
    names = {p.name for p in notebook_sources()}
    stale = sorted(n for n in ALLOWED if n not in names or not private_uses(ROOT / "notebooks" / n))
    assert not stale, f"remove from ALLOWED in tests/test_public_api.py (no private uses left): {stale}"


def test_the_scanner_sees_private_uses(tmp_path):
    src = tmp_path / "99_x.py"
    src.write_text("from v4s_lite import evaluate as E\nimport numpy as np\nest = E.PoseEstimator(1)\n"
                   "a = est._prepare(2)\nb = E._blur(a)\nc = np._private\nd = est.__class__\n"
                   "from v4s_lite.train import _pad_text, add_noise\nfrom numpy import _globals\n")
    assert [u.split(": ", 1)[1] for u in private_uses(src)] == ["est._prepare", "E._blur",
                                                                "from v4s_lite.train import _pad_text"]

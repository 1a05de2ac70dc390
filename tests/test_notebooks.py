"""The notebooks as course material: structure every notebook must have, and nbval's honesty."""
import json
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))
INSTALL_LINE = 'if importlib.util.find_spec("v4s_lite") is None:'


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_anatomy(path):
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith(f"# {path.name[:2]} ·"), \
        "first cell: markdown title '# NN · Title' saying what the notebook teaches and needs"
    code = [c for c in cells if c["cell_type"] == "code"]
    assert any(INSTALL_LINE in "".join(c["source"]) for c in code[:2]), "an install cell near the top"
    params = [c for c in code if "parameters" in c["metadata"].get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters' (papermill)"
    src = "".join(params[0]["source"])
    for name in ("quick", "device", "seed"):
        assert f"{name} =" in src, f"parameters cell lacks `{name}`"
    assert any(c.get("outputs") for c in code), "committed without outputs: nbval would check nothing"
    for c in code:
        assert not any(o.get("output_type") == "error" for o in c.get("outputs", [])), "a stored output is an error"
        lines = "".join(c["source"]).split("\n")
        if any("NBVAL_" in line for line in lines):
            # nbval 0.11 honours a marker only when it is the whole first line
            assert lines[0].strip() in ("# NBVAL_IGNORE_OUTPUT", "# NBVAL_SKIP"), f"marker not alone on line 1: {lines[0]!r}"
            assert len(lines) > 1 and lines[1].startswith("# reason:"), "the line after an NBVAL marker says '# reason: ...'"
    checkers = ("check_exercise(", "check_context_sampler(", "check_rope_positions(", "check_condition_dropout(")
    assert any(k in "".join(c["source"]) for c in code for k in checkers), "an exercise with an automatic check"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_matches_its_source(path):
    """The .ipynb is generated from the jupytext .py: a forgotten rebuild shows up here."""
    src = path.with_suffix(".py")
    assert src.exists(), f"{src.name} (the jupytext source) is missing"
    want = [c.source for c in jupytext.read(src).cells]
    got = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"]]
    assert got == want, f"{path.name} is stale: run `python tools/build_notebook.py {src.relative_to(NB_DIR.parent)}`"


def test_nbval_catches_a_hand_edited_output(tmp_path):
    """A stored output edited by hand must make the test run fail (strict nbval + our sanitiser)."""
    nb = json.loads((NB_DIR / "00_welcome.ipynb").read_text())
    edited = False
    for c in nb["cells"]:
        for o in c.get("outputs", []):
            text = "".join(o.get("text", []))
            if "paper_train" in text:
                o["text"] = text.replace("9 + 7", "9 + 8")
                edited = True
    assert edited
    (tmp_path / "edited.ipynb").write_text(json.dumps(nb))
    cfg = NB_DIR.parent / ".ci" / "nbval-sanitize.cfg"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
                          "--nbval-sanitize-with", str(cfg), str(tmp_path / "edited.ipynb")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode != 0, run.stdout[-2000:]
    assert "9 + 8" in run.stdout


def _build_notebook_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location("build_notebook", NB_DIR.parent / "tools" / "build_notebook.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_prose_build_keeps_the_outputs_and_refuses_a_changed_code_cell(tmp_path):
    """`build_notebook.py --prose`: markdown edits land without a run; a code edit must be executed instead."""
    tool = _build_notebook_tool()
    src, nb = tmp_path / "00_welcome.py", tmp_path / "00_welcome.ipynb"
    src.write_text((NB_DIR / "00_welcome.py").read_text())
    nb.write_text((NB_DIR / "00_welcome.ipynb").read_text())
    text = src.read_text()
    assert text.count("# # 00 ·") == 1
    src.write_text(text.replace("# # 00 ·", "# # 00 · (edited)"))
    tool.build_prose(src)
    before, after = json.loads((NB_DIR / "00_welcome.ipynb").read_text()), json.loads(nb.read_text())
    assert "".join(after["cells"][0]["source"]).startswith("# 00 · (edited)")
    outputs = lambda n: [c.get("outputs") for c in n["cells"] if c["cell_type"] == "code"]  # noqa: E731
    assert outputs(after) == outputs(before) and any(outputs(after))
    assert after["metadata"] == before["metadata"]
    code = next(c for c in jupytext.read(src).cells if c.cell_type == "code" and "import" in c.source)
    src.write_text(src.read_text().replace(code.source, code.source + "\nx = 1"))
    with pytest.raises(SystemExit, match="code cell .* changed"):
        tool.build_prose(src)
    assert json.loads(nb.read_text()) == after, "a refused build must leave the notebook as it was"

"""`v4s course`: runs notebooks in order with papermill, stops at the first failure and says where."""
import nbformat
import pytest

from v4s_lite.cli import main
from v4s_lite.course import find_notebooks, run_course
from v4s_lite.utils import V4SError


def _write(folder, name, *sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("quick = True\ndevice = 'auto'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, folder / name)


def test_course_runs_in_order_passes_parameters_and_stops_at_first_failure(tmp_path, capsys):
    nbs, out = tmp_path / "nbs", tmp_path / "out"
    nbs.mkdir()
    _write(nbs, "00_a.ipynb", "print('quick is', quick)")
    _write(nbs, "01_b.ipynb", "x = 1", "raise ValueError('broken on purpose')")
    _write(nbs, "02_c.ipynb", "print('never runs')")
    with pytest.raises(V4SError, match=r"01_b.ipynb failed in cell 3 \(`raise ValueError.*ValueError: broken on purpose"):
        run_course(nbs, out, full=True, progress=False)
    assert "quick is False" in (out / "00_a.ipynb").read_text()  # --full reached the parameters cell
    assert not (out / "02_c.ipynb").exists()
    assert "[1/3] 00_a.ipynb" in capsys.readouterr().out


def test_only_and_missing_notebooks(tmp_path):
    _write(tmp_path, "00_a.ipynb", "pass")
    _write(tmp_path, "03_b.ipynb", "pass")
    assert [p.name for p in find_notebooks(tmp_path, ["3"])] == ["03_b.ipynb"]
    with pytest.raises(V4SError, match="no notebook numbered 07"):
        find_notebooks(tmp_path, ["07"])
    with pytest.raises(V4SError, match="no notebooks folder"):
        find_notebooks(tmp_path / "nope")


def test_cli_prints_time_table(tmp_path, capsys):
    _write(tmp_path, "00_a.ipynb", "print(1)")
    assert main(["course", "--notebooks", str(tmp_path), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| 00_a.ipynb" in out and "| total" in out
    assert main(["course", "--notebooks", str(tmp_path), "--only", "09"]) == 2

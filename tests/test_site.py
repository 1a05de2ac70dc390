"""`make site`: the executed notebooks as static HTML pages with an index, readable without a kernel."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_site_builds_pages_with_their_outputs_and_an_index(tmp_path):
    nbs = ["notebooks/01_world.ipynb", "notebooks/06_joint_cfg.ipynb"]
    r = subprocess.run(["make", "-s", "site", f"SITE_PY={sys.executable}", f"SITE_DIR={tmp_path}",
                        f"SITE_NOTEBOOKS={' '.join(nbs)}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    index = (tmp_path / "index.html").read_text()
    assert re.findall(r'href="([^"]+)"', index) == ["01_world.html", "06_joint_cfg.html"]
    assert "01 · The world" in index and "06 · Joint classifier-free guidance" in index
    page01 = (tmp_path / "01_world.html").read_text()
    assert '<video' in page01 and 'src="data:video/mp4;base64,' in page01  # the videos travel inside the page
    page06 = (tmp_path / "06_joint_cfg.html").read_text()
    assert page06.count("data:image/png;base64,") >= 4  # its figures
    assert "joint vs none: PSNR" in page06  # and the printed results

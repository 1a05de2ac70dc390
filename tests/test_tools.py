"""tools/paper_tables.py's bookkeeping: which checkpoint each table row uses."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import paper_tables  # noqa: E402


def _run(root, name, *steps):
    for s in steps:
        (root / name / f"step_{s:06d}").mkdir(parents=True)


def test_ablations_are_compared_at_the_same_step(tmp_path):
    _run(tmp_path, "lite", 250, 500, 750, 1000)
    _run(tmp_path, "lite_nobox", 250, 500)
    _run(tmp_path, "lite_ctxonly", 250, 500, 750)
    c = paper_tables.conditions(tmp_path)
    pick = lambda name: paper_tables.checkpoint(c[name]["ckpt"], c[name].get("step")).name
    assert pick("full (joint CFG)") == "step_001000"  # the headline rows: the shipped run's latest
    assert pick("full, same budget") == pick("without box frames") == pick("context-only attention") == "step_000500"
    assert "contiguous context" not in c  # not trained: no row rather than a crash


def test_runs_stopped_a_few_steps_apart_pair_at_their_nearest_checkpoints(tmp_path):
    # 2026-12-01b: four runs interrupted together at the end of a device call, the shipped run trained on alone
    _run(tmp_path, "lite", 2500, 2750, 2803, 3501)
    _run(tmp_path, "lite_nobox", 2500, 2750, 2763)
    _run(tmp_path, "lite_ctxonly", 2500, 2736)
    c = paper_tables.conditions(tmp_path)
    pick = lambda name: paper_tables.checkpoint(c[name]["ckpt"], c[name].get("step")).name
    assert pick("full (joint CFG)") == "step_003501"
    assert pick("full, same budget") == pick("without box frames") == "step_002750"  # not 2,500: 236 steps short
    assert pick("context-only attention") == "step_002736"


def test_without_variants_there_is_no_same_budget_row(tmp_path):
    _run(tmp_path, "lite", 100)
    c = paper_tables.conditions(tmp_path)
    assert "full, same budget" not in c and "full (joint CFG)" in c

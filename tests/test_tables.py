"""The paper's tables (`v4s tables`, v4s_lite.tables): which checkpoint each row uses, and the results file."""
import json
import time
from pathlib import Path

import pytest

from v4s_lite import tables as paper_tables
from v4s_lite.checkpoints import nearest_checkpoint
from v4s_lite.utils import V4SError


def _run(root, name, *steps):
    for s in steps:
        (root / name / f"step_{s:06d}").mkdir(parents=True)


def test_ablations_are_compared_at_the_same_step(tmp_path):
    _run(tmp_path, "lite", 250, 500, 750, 1000)
    _run(tmp_path, "lite_nobox", 250, 500)
    c = paper_tables.conditions(tmp_path)
    pick = lambda name: nearest_checkpoint(c[name]["ckpt"], c[name].get("step")).name
    assert pick("full (joint CFG)") == "step_001000"  # the headline rows: the shipped run's latest
    assert pick("full, same budget") == pick("without box frames") == "step_000500"
    assert "contiguous context" not in c  # not trained: no row rather than a crash
    assert paper_tables.CONTIGUOUS_AT_INFERENCE not in c  # nor its inference-only split


def test_runs_stopped_a_few_steps_apart_pair_at_their_nearest_checkpoints(tmp_path):
    # 2026-12-01b: four runs interrupted together at the end of a device call, the shipped run trained on alone
    _run(tmp_path, "lite", 2500, 2750, 2803, 3501)
    _run(tmp_path, "lite_nobox", 2500, 2750, 2763)
    _run(tmp_path, "lite_contiguous", 2500, 2736)
    c = paper_tables.conditions(tmp_path)
    pick = lambda name: nearest_checkpoint(c[name]["ckpt"], c[name].get("step")).name
    assert pick("full (joint CFG)") == "step_003501"
    assert pick("full, same budget") == pick("without box frames") == "step_002750"  # not 2,500: 236 steps short
    assert pick("contiguous context") == "step_002736"
    # the non-contiguous run at the same budget, shown contiguous context: splits the input from the training
    inference_only = c[paper_tables.CONTIGUOUS_AT_INFERENCE]
    assert (inference_only["ckpt"].name, pick(paper_tables.CONTIGUOUS_AT_INFERENCE)) == ("lite", "step_002750")
    assert inference_only["sampling"] == c["contiguous context"]["sampling"] == "contiguous"


def test_without_variants_there_is_no_same_budget_row(tmp_path):
    _run(tmp_path, "lite", 100)
    c = paper_tables.conditions(tmp_path)
    assert "full, same budget" not in c and "full (joint CFG)" in c


def test_a_run_without_checkpoints_says_what_to_do(tmp_path):
    (tmp_path / "lite").mkdir()
    with pytest.raises(V4SError, match="train it first"):
        nearest_checkpoint(tmp_path / "lite")


def test_paired_rows_compare_the_same_clips():
    res = {"conditions": {
        "guidance text": {"per_clip": {"a": {"IF@0.2": 0.0, "SD": 0.3, "PSNR": 20.0}, "b": {"IF@0.2": 1.0, "SD": 0.1, "PSNR": 21.0}}},
        "full (joint CFG)": {"per_clip": {"a": {"IF@0.2": 1.0, "SD": 0.1, "PSNR": 20.5}, "b": {"IF@0.2": 1.0, "SD": 0.1, "PSNR": 21.5},
                                          "c": {"IF@0.2": 1.0, "SD": 0.0, "PSNR": 30.0}}}}}
    d = paper_tables.paired(res)
    row = d["joint vs text-only CFG (the paper's 'without context CFG'): IF@0.2"]
    assert row["n"] == 2 and row["mean"] == 0.5 and (row["wins"], row["losses"], row["ties"]) == (1, 0, 1)
    assert d["joint vs text-only CFG (the paper's 'without context CFG'): PSNR"]["mean"] == pytest.approx(0.5)
    assert not any(k.startswith("joint CFG vs no guidance") for k in d)  # a condition not run: no row


@pytest.mark.slow
def test_v4s_tables_writes_the_results_file_notebook_09_reads(tmp_path):
    """make-data -> v4s train (2 steps) -> v4s tables: summaries, paired rows, every try's metrics, the checkpoints."""
    from v4s_lite.cli import main
    from v4s_lite.data import make_dataset

    make_dataset(tmp_path / "data" / "train", "grounding", 1, seed=0, clip_cfg="quick", progress=False)
    for split in ("id", "ood", "nav"):
        (tmp_path / "data" / "val" / split).mkdir(parents=True)
    make_dataset(tmp_path / "data" / "val" / "id", "grounding", 1, seed=300000, clip_cfg="quick", progress=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"out_dir: {tmp_path / 'runs' / 'lite'}\ndata_root: {tmp_path / 'data' / 'train'}\nclip: quick\n"
                   "model: tiny\nsteps: 2\nbatch_size: 1\ncheckpoint_every: 2\nprogress: false\ndevice: cpu\n"
                   "context_views: 1\n")
    assert main(["train", str(cfg)]) == 0
    out = tmp_path / "tables.json"
    args = ["tables", "--runs", str(tmp_path / "runs"), "--data", str(tmp_path / "data" / "val"), "--out", str(out),
            "--device", "cpu", "--workers", "1"]
    assert main(args + ["--tries", "3", "--only", "ground truth", "full (joint CFG)", "guidance text"]) == 0
    res = json.loads(out.read_text())
    assert res["command"].startswith("v4s tables --runs") and "'full (joint CFG)'" in res["command"]  # re-runnable
    assert set(res["conditions"]) == {"ground truth", "full (joint CFG)", "guidance text"}
    assert res["conditions"]["ground truth"]["summary"]["walk"]["mean"] == 1.0
    tries = res["tries"]["full (joint CFG)"]
    assert tries["n"] == [1, 2, 3] and len(tries["per_try"]["grounding_300000"]) == 3
    assert {"box confidence", "pose residual", "final-view residual"} <= set(tries)
    assert res["checkpoints"]["full (joint CFG)"].endswith("step_000002")
    assert res["paired"]["joint vs text-only CFG (the paper's 'without context CFG'): SD"]["n"] == 1
    assert main(args + ["--only", "no such row"]) == 2  # a clear error, not an empty table
    # --resume: a second room joins the set; the first room's rows are kept as stored (a marked value survives),
    # only the new room is scored, a row not asked for is kept as it was, and a run that could not share the table
    # is refused
    res["conditions"]["guidance text"]["per_clip"]["grounding_300000"]["SD"] = 123.0
    out.write_text(json.dumps(res))
    make_dataset(tmp_path / "data" / "val" / "id", "grounding", 1, seed=300001, clip_cfg="quick", progress=False)
    rows = ["--only", "full (joint CFG)", "guidance text"]
    assert main(args + ["--tries", "3", "--resume"] + rows) == 0
    res = json.loads(out.read_text())
    assert res["conditions"]["guidance text"]["per_clip"]["grounding_300000"]["SD"] == 123.0
    assert {c: r["summary"]["n"] for c, r in res["conditions"].items()} == {
        "ground truth": 1, "full (joint CFG)": 2, "guidance text": 2}
    assert len(res["tries"]["full (joint CFG)"]["per_try"]["grounding_300001"]) == 3
    assert res["paired"]["joint vs text-only CFG (the paper's 'without context CFG'): SD"]["n"] == 2
    assert main(args + ["--tries", "3", "--resume", "--seed", "1"] + rows) == 2  # other noise
    assert main(args + ["--resume"] + rows) == 2  # 1 try per clip where the file has 3
    assert main(args + ["--tries", "2", "--resume"] + rows) == 2  # a row grows to more tries, never to fewer
    # --tries 4 --resume grows the row: each room keeps its 3 stored tries and gets only a 4th, the same 4th try a
    # fresh 4-try run makes (try k has noise seed k - 1), so a table of 3 tries grows on a later machine
    stored = res["tries"]["full (joint CFG)"]["per_try"]
    assert main(args + ["--tries", "4", "--resume", "--only", "full (joint CFG)"]) == 0
    grown = json.loads(out.read_text())["tries"]["full (joint CFG)"]
    assert grown["n"] == [1, 2, 3, 4] and all(grown["per_try"][k][:3] == stored[k] for k in stored)
    fresh = tmp_path / "fresh4.json"
    assert main([*args[:5], "--out", str(fresh), "--device", "cpu", "--workers", "1", "--only", "full (joint CFG)",
                 "--max-clips", "1", "--tries", "4"]) == 0
    fourth = json.loads(fresh.read_text())["tries"]["full (joint CFG)"]["per_try"]["grounding_300000"][3]
    assert grown["per_try"]["grounding_300000"][3] == fourth and fourth != stored["grounding_300000"][2]
    assert main(["tables", "--runs", str(tmp_path / "runs"), "--data", str(tmp_path / "nowhere"), "--out", str(out),
                 "--device", "cpu", "--only", "ground truth"]) == 2
    # --scales: a joint-CFG row of the main run at another guidance scale, on the same rooms and noise
    scaled = tmp_path / "scales.json"
    assert main([*args[:5], "--out", str(scaled), "--device", "cpu", "--workers", "1", "--only", "full (joint CFG)",
                 "--max-clips", "1", "--scales", "12"]) == 0
    res = json.loads(scaled.read_text())
    full, s12 = (res["conditions"][k]["per_clip"] for k in ("full (joint CFG)", "joint CFG, scale 12"))
    assert full.keys() == s12.keys() and all(full[k]["PSNR"] != s12[k]["PSNR"] for k in full)  # another video
    assert main([*args[:5], "--out", str(scaled), "--only", "ground truth", "--scales", "5"]) == 2  # the full row's
    # --sampling: a row of the main run with another solver, on the same rooms and noise; a video of its own
    solved = tmp_path / "sampling.json"
    assert main([*args[:5], "--out", str(solved), "--device", "cpu", "--workers", "1", "--only", "full (joint CFG)",
                 "--max-clips", "1", "--sampling", "steps=3", "scheduler=euler,steps=3"]) == 0
    res = json.loads(solved.read_text())
    full, *others = (res["conditions"][k]["per_clip"] for k in ("full (joint CFG)", "sampling steps=3",
                                                                 "sampling scheduler=euler, steps=3"))
    assert all(full[k]["PSNR"] != o[k]["PSNR"] for o in others for k in full)
    assert others[0]["grounding_300000"]["PSNR"] != others[1]["grounding_300000"]["PSNR"]  # unipc != euler
    assert res["paired"]["sampling steps=3 vs the defaults: walk"]["n"] == 1


def test_rejudge_recomputes_verdicts_summaries_and_pairs_from_stored_numbers():
    from v4s_lite.evaluate import Judge

    clip = {"first_psnr": 40.0, "start_err_m": 0.1, "start_err_deg": 1.0, "jump_m": 3.0, "jump_deg": 20.0,
            "residual_max": 0.05, "DD": 1, "target_share": 0.1, "box_IoU": 0.8, "SD": 0.05,
            "walk": 0.0, "IF": 0.0, "IF@0.2": 0.0, "PSNR": 20.0}
    res = {"conditions": {"guidance text": {"per_clip": {"a": dict(clip, jump_m=9.0)}},
                          "full (joint CFG)": {"per_clip": {"a": dict(clip)}}}}
    out = paper_tables.rejudge(res, Judge(jump_m=2.5))
    assert out["conditions"]["full (joint CFG)"]["summary"]["IF@0.2"]["mean"] == 0.0  # a 3 m jump: a teleport
    out = paper_tables.rejudge(res, Judge(jump_m=4.0))
    assert out["conditions"]["full (joint CFG)"]["summary"]["IF@0.2"]["mean"] == 1.0
    assert out["conditions"]["guidance text"]["summary"]["IF@0.2"]["mean"] == 0.0  # 9 m still is
    assert out["paired"]["joint vs text-only CFG (the paper's 'without context CFG'): IF@0.2"]["mean"] == 1.0
    assert "jump_m=4.0" in out["judge"]


def test_judge_device_judges_there_with_the_same_metrics(tmp_path):
    """paper_tables(judge_device="cpu") (`v4s tables --judge-device cpu`): the video is generated on --device, the
    judge renders on the judge device, and its metrics are those of judging on the default device. The generating
    device here is one the judge cannot use, so a judge that ignored judge_device would fail."""
    import json

    import numpy as np
    import torch

    from v4s_lite.config import ClipConfig
    from v4s_lite.data import clip_meta
    from v4s_lite.scene import make_scene
    from v4s_lite.tables import _task
    from v4s_lite.world import make_clip

    cfg = ClipConfig(width=104, height=64, scan_frames=17, context_chunks=2, target_chunks=2, box_frames=4)
    scene = make_scene(8)
    folder = tmp_path / "id" / "grounding_000008"
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps(clip_meta(make_clip(scene, "grounding", cfg, seed=8), cfg)))
    threads = torch.get_num_threads()
    try:
        default = _task(("ground truth", {"kind": "gt"}, str(folder), "cpu", 0))[0]
        elsewhere = _task(("ground truth", {"kind": "gt", "judge_device": "cpu"}, str(folder), "cuda:99", 0))[0]
    finally:
        torch.set_num_threads(threads)
    assert default.keys() == elsewhere.keys()
    for k, v in default.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(v, elsewhere[k])
        elif isinstance(v, float) and np.isnan(v):
            assert np.isnan(elsewhere[k]), k
        else:
            assert elsewhere[k] == v, k
    with pytest.raises(Exception):  # the generating device is not one the judge could have used
        _task(("ground truth", {"kind": "gt"}, str(folder), "cuda:99", 0))


def test_merge_joins_two_machines_tables_first_file_wins_and_refuses_a_mix():
    """`v4s tables --merge`: the union of the rooms per condition, the first file's scores where both scored a room
    (and how far the two disagree there), summaries and paired rows recomputed on the union; files of another
    judge, seed, evaluation set or checkpoint are refused."""
    def clip(sd, psnr):
        return {"SD": sd, "PSNR": psnr, "IF@0.2": float(sd < 0.2), "walk": 1.0}

    def res(rows, **kw):
        return {"command": "v4s tables", "data": "data/lite/test", "seconds": 1.0, "seed": 0, "judge": "J",
                "checkpoints": {"full (joint CFG)": "runs/shipped/step_003501"}, "tries": {},
                "conditions": {name: {"summary": {}, "per_clip": per} for name, per in rows.items()}, **kw}

    a = res({"full (joint CFG)": {"r1": clip(0.1, 20.0), "r2": clip(0.5, 19.0)},
             "guidance text": {"r1": clip(0.3, 21.0), "r2": clip(0.4, 20.0)}})
    b = res({"full (joint CFG)": {"r2": clip(0.15, 18.0), "r3": clip(0.05, 22.0)},
             "guidance text": {"r3": clip(0.6, 21.0)}})
    merged, agree = paper_tables.merge([a, b])
    full = merged["conditions"]["full (joint CFG)"]
    assert sorted(full["per_clip"]) == ["r1", "r2", "r3"] and full["per_clip"]["r2"]["SD"] == 0.5  # the first wins
    assert full["summary"]["n"] == 3 and abs(full["summary"]["SD"]["mean"] - (0.1 + 0.5 + 0.05) / 3) < 1e-12
    assert agree["full (joint CFG)"] == {"both": 1, "verdicts_differ": 1, "max_abs_SD": pytest.approx(0.35),
                                         "max_abs_PSNR": pytest.approx(1.0)}
    assert agree["guidance text"]["both"] == 0
    pair = merged["paired"]["joint vs text-only CFG (the paper's 'without context CFG')" + ": SD"]
    assert pair["n"] == 3 and pair["mean"] == pytest.approx(((0.1 - 0.3) + (0.5 - 0.4) + (0.05 - 0.6)) / 3)
    for bad, what in ((res({}, judge="other"), "judge"), (res({}, seed=1), "seed"),
                      (res({}, data="data/lite/val"), "evaluation set"),
                      (res({}, checkpoints={"full (joint CFG)": "runs/shipped/step_000100"}), "used")):
        with pytest.raises(V4SError, match=what):
            paper_tables.merge([a, bad])


def test_check_shares_say_where_a_rows_videos_fail():
    """Each check's share is the fraction of the row's videos passing it, under the judge's thresholds; a value the
    judge could not measure (no box drawn) fails; rows without grounding numbers (navigation) have no shares."""
    from v4s_lite.evaluate import Judge

    ok = {"start_ok": 1.0, "DD": 1, "no_teleport": 1.0, "no_backtrack": 1.0, "stops": 1.0, "fits_room": 1.0,
          "walk": 1.0, "target_share": 0.05, "box_IoU": 0.8, "SD": 0.05, "IF@0.2": 1.0}
    res = {"conditions": {
        "full (joint CFG)": {"per_clip": {
            "a": ok,
            "b": dict(ok, no_backtrack=0.0, walk=0.0, **{"IF@0.2": 0.0}),
            "c": dict(ok, target_share=0.001, box_IoU=None, SD=0.5, **{"IF@0.2": 0.0}),
            "d": dict(ok, box_IoU=0.2, **{"IF@0.2": 0.0})}},
        "navigation": {"per_clip": {"n": {"walk": 1.0, "GT_PSNR": 20.0}}}}}
    s = paper_tables.check_shares(res)
    assert set(s) == {"full (joint CFG)"}  # navigation has no destination to check
    row = s["full (joint CFG)"]
    assert row["n"] == 4 and row["starts at the given view"] == 1.0
    assert row["no backtrack"] == row["walk (all six)"] == 0.75
    assert row["target in the final view"] == 0.75 and row["box on the target"] == 0.5  # None counts as failed
    assert row["SD < 0.2"] == 0.75 and row["IF(SD<0.2)"] == 0.25
    assert paper_tables.check_shares(res, Judge(box_iou=0.1))["full (joint CFG)"]["box on the target"] == 0.75
    table = paper_tables.check_table(s)
    assert table.splitlines()[2].startswith("| full (joint CFG) | 1.00") and table.count("\n") == 2
    clips = res["conditions"]["full (joint CFG)"]["per_clip"]  # one video, one check: the same rule
    assert [paper_tables.passes(clips[k], "box on the target") for k in "abcd"] == [True, True, False, False]
    assert paper_tables.passes(clips["d"], "box on the target", Judge(box_iou=0.1))
    with pytest.raises(V4SError, match="unknown check 'walk'.*walk \\(all six\\)"):
        paper_tables.passes(clips["a"], "walk")


def test_the_chance_row_walks_perfectly_to_another_object_and_fails(tmp_path):
    """'walk to another object (chance)': a perfect video for another instruction (calibration.approach_video),
    scored by the same judge: the box is on the wrong object, so IF(SD<0.2) is 0 and the box misses the target,
    where the same judge passes the clip's own ground truth."""
    from v4s_lite.config import ClipConfig
    from v4s_lite.data import clip_meta
    from v4s_lite.scene import make_scene
    from v4s_lite.tables import _task
    from v4s_lite.world import make_clip
    import torch

    cfg = ClipConfig(width=104, height=64, scan_frames=17, context_chunks=2, target_chunks=2, box_frames=4)
    folder = tmp_path / "id" / "grounding_000008"
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps(clip_meta(make_clip(make_scene(8), "grounding", cfg, seed=8), cfg)))
    assert "walk to another object (chance)" in paper_tables.conditions(tmp_path)
    threads = torch.get_num_threads()
    try:
        m = _task(("walk to another object (chance)", {"kind": "other"}, str(folder), "cpu", 0))[0]
        gt = _task(("ground truth", {"kind": "gt"}, str(folder), "cpu", 0))[0]
    finally:
        torch.set_num_threads(threads)
    assert gt["IF@0.2"] == 1.0 and gt["box_IoU"] > 0.5
    assert m["IF@0.2"] == 0.0 and m["box_IoU"] < 0.3 and m["SD"] > gt["SD"]


def _choice_results(per_run: dict) -> dict:
    """A validation results file with one 'full: RUN' row per run: {run: [(IF@0.2, SD[, walk]) per room]}."""
    from v4s_lite.statistics import summarize

    conds = {}
    for r, rooms in per_run.items():
        per_clip = {f"grounding_{300000 + i}": dict(zip(("IF@0.2", "SD", "walk"), t)) for i, t in enumerate(rooms)}
        conds[f"full: {r}"] = {"per_clip": per_clip, "summary": summarize(per_clip)}
    return {"conditions": conds}


def test_choose_run_keeps_the_incumbent_unless_the_paired_lead_is_shown():
    # the 2026-12-04 case: a 4-to-2 lead on 35 rooms is the rule's pick, but not shown better than the shipped model
    shipped = [(1.0, 0.1)] * 2 + [(0.0, 0.4)] * 33
    warm = [(0.0, 0.4)] * 2 + [(1.0, 0.1)] * 4 + [(0.0, 0.4)] * 29
    c = paper_tables.choose_run(_choice_results({"shipped": shipped, "lite_warm": warm}), ["shipped", "lite_warm"])
    assert c["by_rule"] == "lite_warm" and c["chosen"] == "shipped"
    assert c["vs_incumbent"]["ci95"][0] <= 0 < c["vs_incumbent"]["mean"] and "not shown" in c["reason"]
    # a clear paired lead replaces it
    strong = [(1.0, 0.1)] * 2 + [(1.0, 0.1)] * 20 + [(0.0, 0.4)] * 13
    c = paper_tables.choose_run(_choice_results({"shipped": shipped, "lite_m": strong}), ["shipped", "lite_m"])
    assert c["chosen"] == "lite_m" and c["vs_incumbent"]["ci95"][0] > 0
    # without an incumbent the rule alone decides; a tie on IF@0.2 goes to the lower SD
    a, b = [(1.0, 0.15), (0.0, 0.3)], [(1.0, 0.15), (0.0, 0.25)]
    c = paper_tables.choose_run(_choice_results({"a": a, "b": b}), ["a", "b"], incumbent=None)
    assert c["chosen"] == "b" and c["vs_incumbent"] is None


def test_choose_runs_second_tier_takes_a_shown_lower_sd_only_without_losing_if_or_walk():
    """sd_tier (the solver and training-lever leases): when the incumbent stays, a run whose SD is shown lower, with
    IF(SD<0.2) and walk not lower on average, replaces it; one that pays for its SD with walks does not."""
    shipped = [(0.0, 0.40, 1.0)] * 30 + [(1.0, 0.10, 1.0)] * 2
    closer = [(0.0, 0.30, 1.0)] * 30 + [(1.0, 0.10, 1.0)] * 2  # every room nearer the target, nothing lost
    res = _choice_results({"shipped": shipped, "closer": closer})
    assert paper_tables.choose_run(res, ["shipped", "closer"])["chosen"] == "shipped"  # tier 1 alone keeps it
    c = paper_tables.choose_run(res, ["shipped", "closer"], sd_tier=True)
    assert c["chosen"] == "closer" and c["tier"] == 2 and "tier 2: closer" in c["reason"]
    no_walk = [(0.0, 0.30, 0.0)] * 30 + [(1.0, 0.10, 1.0)] * 2  # nearer, but the walks fail
    c = paper_tables.choose_run(_choice_results({"shipped": shipped, "no_walk": no_walk}), ["shipped", "no_walk"],
                                sd_tier=True)
    assert c["chosen"] == "shipped" and c["tier"] == 1 and "shipped stays" in c["reason"]
    noisy = [(0.0, 0.20 if i % 2 else 0.58, 1.0) for i in range(30)] + [(1.0, 0.10, 1.0)] * 2  # lower on average, not shown
    c = paper_tables.choose_run(_choice_results({"shipped": shipped, "noisy": noisy}), ["shipped", "noisy"],
                                sd_tier=True)
    assert c["chosen"] == "shipped"


def test_choose_run_skips_unscored_runs_and_refuses_when_none_was_scored():
    res = _choice_results({"lite_m": [(1.0, 0.1), (0.0, 0.3)]})
    c = paper_tables.choose_run(res, ["lite_m", "lite_l"], incumbent=None)
    assert c["chosen"] == "lite_m" and [r[0] for r in c["rows"]] == ["lite_m"]
    with pytest.raises(V4SError, match="none of .* has a scored"):
        paper_tables.choose_run(res, ["lite_l"], incumbent=None)


_WALKS = {"first_psnr": 40.0, "start_err_m": 0.1, "start_err_deg": 1.0, "jump_m": 1.0, "jump_deg": 20.0,
          "residual_max": 0.05, "DD": 1, "walk": 0.0, "PSNR": 20.0}  # the stored numbers of a video that walks


def test_guidance_scales_are_rows_of_the_main_run_chosen_by_the_same_rule(tmp_path):
    """`v4s tables --scales 3 8`: a joint-CFG row of the main run per scale; the scale is chosen on validation by
    choose_run's rule among those rows, the default scale's row ("full (joint CFG)") as the incumbent."""
    _run(tmp_path, "lite", 3501)
    c = paper_tables.conditions(tmp_path, scales=(3, 8.5))
    assert c["joint CFG, scale 3"]["scale"] == 3.0 and c["joint CFG, scale 8.5"]["ckpt"] == c["full (joint CFG)"]["ckpt"]
    assert "scale" not in c["full (joint CFG)"]  # the default scale, SamplingSettings.scale
    for bad in ((5,), (0,), (3, 3), (-1,)):
        with pytest.raises(V4SError, match="--scales"):
            paper_tables.conditions(tmp_path, scales=bad)
    five = [(1.0, 0.1)] * 2 + [(0.0, 0.4)] * 30
    eight = [(1.0, 0.1)] * 2 + [(1.0, 0.1)] * 20 + [(0.0, 0.4)] * 10
    three = [(0.0, 0.5)] * 32
    res = _choice_results({"5": five, "8": eight, "3": three})
    res["conditions"] = {("full (joint CFG)" if k == "full: 5" else paper_tables.scale_row(float(k[6:]))): v
                         for k, v in res["conditions"].items()}
    rows = ["full (joint CFG)", "joint CFG, scale 3", "joint CFG, scale 8"]
    c = paper_tables.choose_run(res, rows, incumbent="full (joint CFG)", row="{}")
    assert c["chosen"] == "joint CFG, scale 8" and c["vs_incumbent"]["wins"] == 20
    res["conditions"]["joint CFG, scale 8"] = res["conditions"]["joint CFG, scale 3"]  # no shown lead: 5 stays
    res["conditions"]["joint CFG, scale 3"] = _choice_results({"x": [(1.0, 0.1)] * 3 + [(0.0, 0.4)] * 29})[
        "conditions"]["full: x"]
    c = paper_tables.choose_run(res, rows, incumbent="full (joint CFG)", row="{}")
    assert c["by_rule"] == "joint CFG, scale 3" and c["chosen"] == "full (joint CFG)"
    d = paper_tables.paired(res)  # each scale's row against the default scale's, clip by clip
    assert d["joint CFG scale 3 vs scale 5: IF@0.2"]["wins"] == 1 and d["joint CFG scale 8 vs scale 5: SD"]["n"] == 32


def test_solver_settings_are_rows_of_the_main_run_checked_before_any_model_loads(tmp_path):
    """`v4s tables --sampling steps=40 shift=6`: one row of the main run per solver setting, named by its
    settings, sampled with them (the scale and guidance of "full (joint CFG)"); every wrong setting is refused with
    what to write instead."""
    _run(tmp_path, "lite", 3501)
    assert paper_tables.parse_sampling("scheduler=euler, steps=40") == {"scheduler": "euler", "steps": 40}
    c = paper_tables.conditions(tmp_path, sampling=("steps=40", "shift=6", {"scheduler": "euler", "steps": 40}))
    assert c["sampling steps=40"]["solver"] == {"steps": 40} and c["sampling shift=6"]["solver"] == {"shift": 6.0}
    assert c["sampling scheduler=euler, steps=40"]["ckpt"] == c["full (joint CFG)"]["ckpt"]
    assert "solver" not in c["full (joint CFG)"]
    for bad, why in (("steps=0", "steps 0"), ("shift=-1", "flow shift"), ("steps=many", "not a number"),
                     ("scale=3", "--scales"), ("steps", "KEY=VALUE"), ("steps=4,steps=5", "twice"),
                     ("scheduler=nope", "scheduler 'nope'"), ("steps=20", "the defaults"), ("", "no setting")):
        with pytest.raises(V4SError, match=why):
            paper_tables.parse_sampling(bad)
    with pytest.raises(V4SError, match="twice"):
        paper_tables.conditions(tmp_path, sampling=("steps=40", "steps=40"))


def test_rejudge_and_merge_refuse_settings_of_what_to_generate(tmp_path, capsys):
    """--rejudge and --merge generate nothing: a --scales, --only, --also, --tries or --resume beside them would be
    ignored, so it is refused with what to do instead; nothing is written."""
    from v4s_lite.cli import main

    out = tmp_path / "t.json"
    out.write_text(json.dumps({"conditions": {}, "command": "v4s tables"}))
    before = out.read_text()
    assert main(["tables", "--rejudge", "--out", str(out), "--scales", "3"]) == 2
    assert "--scales choose what to generate" in capsys.readouterr().err
    assert main(["tables", "--merge", str(out), str(out), "--out", str(out), "--only", "full (joint CFG)",
                 "--tries", "3"]) == 2
    assert "--only --tries" in capsys.readouterr().err and out.read_text() == before


def test_rejudge_asks_no_box_of_the_run_trained_without_box_frames():
    """Results scored before clips recorded `marked` (results/lite_2026-12-02): the "without box frames" condition's
    videos were asked for a box they were never trained to draw (IF 0 in every room, so "box frames vs none" could
    not fail). rejudge scores them unmarked; every other condition keeps its box requirement."""
    clip = {**_WALKS, "target_share": 0.1, "box_IoU": 0.0, "SD": 0.05, "IF": 0.0, "IF@0.2": 0.0}
    res = {"conditions": {"without box frames": {"per_clip": {"a": dict(clip), "b": dict(clip, target_share=0.0)}},
                          "full, same budget": {"per_clip": {"a": dict(clip, box_IoU=0.5), "b": dict(clip)}}}}
    out = paper_tables.rejudge(res)
    assert out["conditions"]["without box frames"]["summary"]["IF@0.2"]["mean"] == 0.5  # a: found, b: not in view
    assert out["conditions"]["full, same budget"]["summary"]["IF@0.2"]["mean"] == 0.5  # b: no box on the target
    d = out["paired"]["box frames vs none (same budget): IF@0.2"]
    assert (d["n"], d["wins"], d["losses"], d["mean"]) == (2, 0, 0, 0.0)
    assert paper_tables.UNMARKED == ("without box frames",) and "without box frames" in paper_tables.VARIANTS


def test_ablations_pair_with_the_run_they_were_trained_beside(tmp_path):
    # an END=scan recipe's box-frames ablation (end_lite_nobox) pairs with end_lite, not with the shipped recipe's lite
    _run(tmp_path, "lite", 3501)
    _run(tmp_path, "end_lite", 2000, 4000, 6010)
    _run(tmp_path, "end_lite_nobox", 2000, 4000, 5990)
    c = paper_tables.conditions(tmp_path, main="end_lite", ablated="end_lite")
    pick = lambda name: (c[name]["ckpt"].name, nearest_checkpoint(c[name]["ckpt"], c[name].get("step")).name)
    assert pick("full, same budget") == ("end_lite", "step_006010")
    assert pick("without box frames") == ("end_lite_nobox", "step_005990")
    assert "without box frames" not in paper_tables.conditions(tmp_path)  # lite has no lite_nobox beside it
    _run(tmp_path, "old_nobox", 100)  # an ablation whose run is gone: say so, and which flag names the run
    with pytest.raises(V4SError, match="--ablated"):
        paper_tables.conditions(tmp_path, ablated="old")


def test_a_deadline_cut_never_replaces_a_fuller_stored_row_of_the_same_checkpoint(tmp_path):
    """`v4s tables --only "full: C" --also A B C --deadline T` runs A's and B's rows again; cut by the deadline, their
    partial rows used to overwrite the full ones --out held (results/gpu_2026-12-06). Kept now, unless anything that
    made the stored row differs (checkpoint, judge, seed, rooms; tables._mismatches, as --resume) or it is not fuller."""
    from v4s_lite.evaluate import JUDGE

    for name, step in (("A", 1), ("B", 1), ("C", 13), ("D", 1)):
        _run(tmp_path, name, step)
    conds = {f"full: {r}": dict(ckpt=tmp_path / r, split="id") for r in "ABCD"}
    row = lambda n: {"per_clip": {f"grounding_{i}": {"SD": 0.1} for i in range(n)}}
    prev = {"judge": repr(JUDGE), "seed": 0, "data": "/gpu/data/lite_mixed/val",
            "conditions": {"full: A": row(200), "full: B": row(3), "full: C": row(131)},
            "checkpoints": {"full: A": "/gpu/runs/A/step_000001", "full: B": "/gpu/runs/B/step_000001",
                            "full: C": "/gpu/runs/C/step_000009"}}
    per = {"full: A": row(50)["per_clip"], "full: B": row(50)["per_clip"], "full: C": row(50)["per_clip"],
           "full: D": row(50)["per_clip"]}
    here = Path("/tmp/copy/lite_mixed/val")
    # A: fuller, same checkpoint -> kept; B: the part is larger; C: another checkpoint; D: not stored
    assert paper_tables.keep_fuller_rows(prev, per, conds, 0, here) == ["full: A"]
    assert paper_tables.keep_fuller_rows(prev, per, conds, 1, here) == []  # other noise
    assert paper_tables.keep_fuller_rows(prev, per, conds, 0, Path("/tmp/lite_mixed/test")) == []  # other rooms
    assert paper_tables.keep_fuller_rows({**prev, "judge": "Judge(old)"}, per, conds, 0, here) == []


class _Done:
    def __init__(self, value):
        self.value = value

    def get(self, timeout=None):
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value


def test_an_interrupted_table_keeps_the_rooms_scored_before_it(capsys):
    """Ctrl-C or SIGTERM in the middle of `v4s tables`: the tasks done are returned (and written, resumable), not lost
    (a killed 30-minute run once left nothing); the deadline and the progress line work as before."""
    tasks = [("full", None, f"/d/id/grounding_{i}", "cpu", 0) for i in range(4)]
    pending = [_Done({"SD": 0.1}), _Done({"SD": 0.2}), _Done(KeyboardInterrupt()), _Done({"SD": 0.4})]
    per, done = paper_tables.collect(tasks, pending, 0, 0.0, every=0)
    assert done == 2 and per == {"full": {"grounding_0": {"SD": 0.1}, "grounding_1": {"SD": 0.2}}}
    out = capsys.readouterr().out
    assert "2 of 4 tasks in" in out and "interrupted after 2 of 4 tasks" in out and "--resume" in out
    per, done = paper_tables.collect(tasks, pending[:2], 0, 0.0)
    assert done == 2 and "interrupted" not in capsys.readouterr().out
    per, done = paper_tables.collect(tasks, pending, 1.0, time.time() - 5)  # past the deadline: nothing waited for
    assert done == 0 and per == {}


def test_sigterm_stops_a_table_as_ctrl_c_does_and_the_handler_is_restored():
    import os
    import signal

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with paper_tables.sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
    assert signal.getsignal(signal.SIGTERM) is before

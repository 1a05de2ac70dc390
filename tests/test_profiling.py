"""TrainConfig.profile_steps: torch.profiler over a few training steps, read back as the device's busy fraction and
its idle gaps named by the host operation inside each (v4s_lite/profiling.py)."""
import json
import random

import pytest
from test_train import NULL, fake_items, small_cfg

from v4s_lite.config import TrainConfig
from v4s_lite.profiling import busy_and_gaps, format_summary, summarise_trace
from v4s_lite.train import read_log, train
from v4s_lite.utils import V4SError

pytestmark = pytest.mark.usefixtures("one_thread")


def brute_force(intervals, window, step=0.5):
    """Busy time and idle holes on a grid of half units: the reference for busy_and_gaps."""
    lo, hi = window
    n = int((hi - lo) / step)
    busy = [any(s <= lo + (i + 0.5) * step < e for s, e in intervals) for i in range(n)]
    gaps, i = [], 0
    while i < n:
        if not busy[i]:
            j = i
            while j < n and not busy[j]:
                j += 1
            gaps.append((lo + i * step, lo + j * step))
            i = j
        else:
            i += 1
    return sum(busy) * step, gaps


def test_busy_and_gaps_equal_a_brute_force_count():
    rng = random.Random(0)
    for _ in range(200):  # overlapping kernels (several streams), intervals crossing the window's edges
        iv = [(s, s + rng.randint(1, 6)) for s in (rng.randint(-5, 40) for _ in range(rng.randint(0, 8)))]
        want_busy, want_gaps = brute_force(iv, (0, 40))
        busy, gaps = busy_and_gaps(iv, (0, 40))
        assert busy == want_busy and gaps == want_gaps, iv
    # min_gap drops short holes only
    assert busy_and_gaps([(0, 10), (11, 20), (25, 30)], (0, 30), min_gap=2)[1] == [(20, 25)]


def _ev(name, cat, ts, dur):
    return {"ph": "X", "name": name, "cat": cat, "ts": ts, "dur": dur}


def test_summary_finds_the_host_wait_that_starves_the_device():
    """Two steps of 1 ms; in each the device idles 300 us while the host sits in `aten::item` (a sync): the
    summary says 70% busy, 0.3 ms idle per step, and names the item call, not the longer kernel-launch ops."""
    ev = []
    for k, t0 in enumerate((0, 1000)):
        ev.append(_ev(f"ProfilerStep#{k + 5}", "user_annotation", t0, 1000))
        ev.append(_ev(f"ProfilerStep#{k + 5}", "gpu_user_annotation", t0 + 10, 1200))  # its device-side copy
        ev.append(_ev("aten::linear", "cpu_op", t0, 600))
        ev.append(_ev("ampere_gemm", "kernel", t0 + 10, 690))  # busy 10..700 of the step
        ev.append(_ev("aten::item", "cpu_op", t0 + 650, 340))  # the host waits, then the device has nothing
        ev.append(_ev("elementwise", "kernel", t0 + 990, 10))
    s = summarise_trace({"traceEvents": ev}, min_gap_us=50)
    assert s["steps"] == 2 and s["ms_per_step"] == pytest.approx(1.0)
    assert s["device_busy"] == pytest.approx(0.7)
    assert s["idle_ms_per_step"] == pytest.approx(0.3)
    assert [g["host"] for g in s["gaps"]] == ["aten::item", "aten::item"]
    assert s["gaps"][0]["ms"] == pytest.approx(0.29) and s["gaps"][0]["at_ms"] == pytest.approx(0.7)
    assert s["top_kernels"][0]["name"] == "ampere_gemm" and s["top_kernels"][0]["ms_per_step"] == pytest.approx(0.69)
    assert [(h["name"], round(h["ms_per_step"], 2)) for h in s["top_host"]] == [("aten::linear", 0.6),
                                                                               ("aten::item", 0.34)]
    text = format_summary(s)
    assert "busy 70.0%" in text and "aten::item" in text
    with pytest.raises(ValueError, match="ProfilerStep"):
        summarise_trace({"traceEvents": [_ev("k", "kernel", 0, 5)]})


def test_training_with_profile_steps_writes_a_trace_of_exactly_those_steps(tmp_path, capsys):
    run = train(small_cfg(tmp_path, steps=6, checkpoint_every=6, profile_steps=2, profile_after=2), items=fake_items(),
                null_text=NULL)
    trace = json.loads((run / "profile" / "trace.json").read_text())
    steps = sorted(e["name"] for e in trace["traceEvents"] if e.get("name", "").startswith("ProfilerStep#"))
    assert steps == ["ProfilerStep#2", "ProfilerStep#3"]  # the profiler counts from 0: the run's steps 3 and 4
    ops = {e["name"] for e in trace["traceEvents"] if e.get("cat") == "cpu_op"}
    assert "aten::mm" in ops or "aten::addmm" in ops  # the model ran inside the window
    text = (run / "profile" / "summary.txt").read_text()
    assert text.startswith("profile of steps 3-4") and "2 steps recorded" in text and "a CPU run" in text
    assert "Optimizer.step" in text  # among the outermost host operations of a CPU step
    out = capsys.readouterr().out
    assert "profile of steps 3-4" in out and "also save a checkpoint" not in out
    assert [r["step"] for r in read_log(run)][-1] == 6  # training went on to the end


def test_a_profile_window_that_holds_a_checkpoint_save_says_so(tmp_path, capsys):
    """The run's last step saves a checkpoint: recorded, its save reads as host time and device idle (a GPU profile
    of the 5B loop showed 70 ms of isfinite and 220 ms of copies per step from it), so the run says which steps."""
    train(small_cfg(tmp_path, steps=4, checkpoint_every=100, profile_steps=2, profile_after=2), items=fake_items(),
          null_text=NULL)
    assert "profile: steps [4] of the recorded 3-4 also save a checkpoint" in capsys.readouterr().out


def test_profile_settings_that_cannot_work_are_refused(tmp_path):
    with pytest.raises(V4SError, match="profile_after"):
        TrainConfig(steps=10, profile_steps=2, profile_after=0)
    with pytest.raises(V4SError, match="exceeds steps"):
        TrainConfig(steps=10, profile_steps=5, profile_after=6)
    with pytest.raises(V4SError, match="profile_steps"):
        TrainConfig(profile_steps=-1)
    # a resumed run counts from its checkpoint: the window must still fit
    cfg = small_cfg(tmp_path, steps=6, checkpoint_every=4)
    train(cfg, items=fake_items(), null_text=NULL)
    late = small_cfg(tmp_path, steps=6, checkpoint_every=4, profile_steps=2, profile_after=1)
    with pytest.raises(V4SError, match="past steps=6"):
        train(late, resume=tmp_path / "step_000004", items=fake_items(), null_text=NULL)


def test_sample_flops_equal_torch_flop_counter_on_a_training_batch(tmp_path):
    """The logged model FLOPs (3x the forward's matmuls per sample) count what torch's FlopCounterMode counts when
    the model runs a real training batch: the token count is [context | first | noisy] after patching."""
    from torch.utils.flop_counter import FlopCounterMode

    from v4s_lite.flow import StepBatches, predict
    from v4s_lite.model import build_model
    from v4s_lite.train import sample_flops

    cfg = small_cfg(tmp_path)
    model = build_model(cfg)
    batch = StepBatches(fake_items(), cfg, NULL, 0)[0]
    model.transformer.set_attention_backend("_native_math")  # attention as matmuls, so the counter sees them
    try:
        with FlopCounterMode(display=False) as fc:
            predict(model, batch, "cpu")
    finally:  # diffusers' set_attention_backend also sets the process-wide default
        model.transformer.set_attention_backend("native")
    assert 3 * fc.get_total_flops() == sample_flops(model, batch) * cfg.batch_size


def test_logged_model_tflops_are_the_sample_rate_times_the_flops(tmp_path):
    from v4s_lite.flow import StepBatches
    from v4s_lite.model import build_model
    from v4s_lite.train import sample_flops

    cfg = small_cfg(tmp_path, steps=4, log_every=2, checkpoint_every=4)
    run = train(cfg, items=fake_items(), null_text=NULL)
    flops = sample_flops(build_model(cfg), StepBatches(fake_items(), cfg, NULL, 0)[0])
    for r in read_log(run):
        assert r["model_tflops"] == pytest.approx(r["samples_per_s"] * flops / 1e12, rel=2e-2)

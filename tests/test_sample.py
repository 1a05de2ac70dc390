"""Sampling: diffusers' flow schedulers land on x0 when the velocity is exact, guidance modes reduce to each
other where the formulas say so, outputs (mp4 + box JSON) carry what the detector read, and the CLI runs."""
import json

import numpy as np
import pytest
import torch

from v4s_lite.bbox import bbox_frames
from v4s_lite.model import V4SModel
from v4s_lite.sample import Sample, generate, make_scheduler, write_sample
from v4s_lite.utils import V4SError


pytestmark = pytest.mark.usefixtures("one_thread")


class ExactVelocity(torch.nn.Module):
    """A V4SModel-shaped callable that knows x0: v = (x_sigma - x0) / sigma, the true flow velocity."""

    def __init__(self, x0, sigmas):
        super().__init__()
        self.x0, self.sigmas = x0, sigmas

    def forward(self, context, first, noisy, t, text, context_positions, target_positions=None):
        # UniPC hands the model integer timesteps (round(1000 sigma)); use the schedule's exact sigma
        sigma = self.sigmas[(self.sigmas - t[0] / 1000).abs().argmin()]
        return (noisy - self.x0.repeat(noisy.shape[0] // self.x0.shape[0], 1, 1, 1, 1)) / sigma


def conditions(b=1, c=12, fc=3, h=4, w=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, c, fc, h, w, generator=g), torch.randn(b, c, 1, h, w, generator=g),
            torch.randn(b, 32, 64, generator=g), torch.zeros(b, 32, 64), [0, 2, 5])


@pytest.mark.parametrize("name", ["euler", "unipc"])
@pytest.mark.parametrize("guidance", ["none", "joint"])
def test_exact_velocity_lands_on_x0(name, guidance):
    ctx, first, text, null, pos = conditions()
    x0 = torch.randn(1, 12, 3, 4, 6, generator=torch.Generator().manual_seed(3))
    sched = make_scheduler(name, shift=3.0)
    sched.set_timesteps(8)
    oracle = ExactVelocity(x0, torch.cat([sched.sigmas[:-1], torch.tensor([1e-9])]))
    out = generate(oracle, ctx, first, text, null, pos, 3, scheduler=sched, steps=8, guidance=guidance, scale=4.0)
    torch.testing.assert_close(out[:, :, 1:], x0, atol=1e-4, rtol=0)
    torch.testing.assert_close(out[:, :, :1], first, atol=0, rtol=0)  # the clean first latent is kept


def test_guidance_modes_reduce_to_conditional_at_scale_one():
    torch.manual_seed(0)
    model = V4SModel.from_preset("tiny").eval()
    args = conditions()
    kw = dict(scheduler="euler", steps=3, seed=11)
    plain = generate(model, *args, 2, guidance="none", **kw)
    for mode in ("text", "joint"):  # uncond + 1 * (cond - uncond) = cond
        torch.testing.assert_close(generate(model, *args, 2, guidance=mode, scale=1.0, **kw), plain, atol=1e-5, rtol=0)
    torch.testing.assert_close(generate(model, *args, 2, guidance="three", text_scale=1.0, context_scale=1.0, **kw),
                               plain, atol=1e-5, rtol=0)
    guided = generate(model, *args, 2, guidance="joint", scale=5.0, **kw)
    assert (guided - plain).abs().max() > 1e-3
    torch.testing.assert_close(generate(model, *args, 2, guidance="joint", scale=5.0, **kw), guided, atol=0, rtol=0)
    other_seed = generate(model, *args, 2, guidance="joint", scale=5.0, scheduler="euler", steps=3, seed=12)
    assert (other_seed - guided).abs().max() > 1e-3


def test_scheduler_choices_and_errors():
    from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    assert isinstance(make_scheduler("euler"), FlowMatchEulerDiscreteScheduler)
    u = make_scheduler("unipc", shift=5.0)
    assert isinstance(u, UniPCMultistepScheduler) and u.config.use_flow_sigmas and u.config.flow_shift == 5.0
    assert isinstance(make_scheduler("FlowMatchEulerDiscreteScheduler", shift=2.0), FlowMatchEulerDiscreteScheduler)
    with pytest.raises(V4SError, match="flow"):
        make_scheduler("DDIMScheduler")  # an epsilon-prediction scheduler cannot take a flow velocity
    with pytest.raises(V4SError, match="euler"):
        make_scheduler("nonsense")


def test_written_sample_carries_the_detected_box(tmp_path):
    from v4s_lite.bbox import detect_red_box
    from v4s_lite.data import read_video

    rng = np.random.default_rng(0)
    context = rng.integers(40, 160, (5, 64, 104, 3), dtype=np.uint8)
    target = np.full((9, 64, 104, 3), 90, np.uint8)
    box = np.array([30.0, 14.0, 70.0, 50.0])
    target = bbox_frames(target, box, 4)
    boxes, conf = detect_red_box(target)
    mp4, js = write_sample(tmp_path, "s", context, Sample(3, target, boxes, conf), n_box_frames=4, fps=8)
    info = json.loads(js.read_text())
    assert info["seed"] == 3 and len(info["frames"]) == 9
    assert all(f["box"] is None for f in info["frames"][:5]), "no box before the box frames"
    np.testing.assert_allclose(info["final_box"], box, atol=1.0)
    video = read_video(mp4, expected_frames=14)  # the context, then the generated frames
    assert video.shape == (14, 64, 104, 3)
    yellow = (video[-1, ..., 0] > 180) & (video[-1, ..., 1] > 180) & (video[-1, ..., 2] < 100)
    assert yellow.sum() > 50, "the detected box is drawn (yellow) on the box frames"


@pytest.mark.slow
def test_train_then_sample_cli(tmp_path):
    """Real clips end to end: make-data -> v4s train (2 steps) -> v4s sample writes an mp4 and a box JSON."""
    from v4s_lite.cli import main
    from v4s_lite.data import make_dataset

    make_dataset(tmp_path / "data", "grounding", 1, seed=0, clip_cfg="quick", progress=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"out_dir: {tmp_path / 'run'}\ndata_root: {tmp_path / 'data'}\nclip: quick\nmodel: tiny\n"
                   "steps: 2\nbatch_size: 1\ncheckpoint_every: 2\nprogress: false\ndevice: cpu\ncontext_views: 1\n")
    assert main(["train", str(cfg)]) == 0
    assert (tmp_path / "run" / "loss.png").exists()
    assert main(["sample", str(tmp_path / "run" / "step_000002"), "--clip", str(tmp_path / "data" / "grounding_000000"),
                 "--out", str(tmp_path / "out"), "--steps", "2", "--tries", "2", "--scheduler", "euler",
                 "--device", "cpu"]) == 0
    for seed in (0, 1):
        info = json.loads((tmp_path / "out" / f"grounding_000000_seed{seed}.json").read_text())
        assert len(info["frames"]) == 17 and info["guidance"] == "joint" and info["instruction"]
        assert (tmp_path / "out" / f"grounding_000000_seed{seed}.mp4").stat().st_size > 0
    assert main(["sample", str(tmp_path / "run"), "--clip", str(tmp_path / "data" / "grounding_000000")]) == 2


@pytest.mark.parametrize("guidance", ["none", "joint", "three"])
def test_context_reuse_samples_what_the_masked_model_samples(guidance):
    """A context_only model samples the same latents whether the context's keys/values are computed at every
    step (the masked reference) or once per video (reuse_context), for every guidance mode: the passes of a
    step have different contexts and instructions, and the cache is filled per pass."""
    torch.manual_seed(0)
    model = V4SModel.from_preset("tiny").eval()
    model.context_attention = "context_only"
    g = torch.Generator().manual_seed(1)
    ctx, first = torch.randn(1, 12, 3, 4, 6, generator=g), torch.randn(1, 12, 1, 4, 6, generator=g)
    text, null = torch.randn(1, 7, 64, generator=g), torch.zeros(1, 7, 64)
    kw = dict(n_noisy=2, steps=4, guidance=guidance, scale=3.0, seed=0)
    with torch.no_grad():
        reused = generate(model, ctx, first, text, null, [0, 4, 8], **kw)
        masked = generate(model, ctx, first, text, null, [0, 4, 8], reuse_context=False, **kw)
        model.context_attention = "full"
        full = generate(model, ctx, first, text, null, [0, 4, 8], **kw)
    torch.testing.assert_close(reused, masked, atol=1e-5, rtol=1e-5)
    assert (reused - full).abs().max() > 1e-3  # and the masked model is a different model
    with pytest.raises(V4SError, match="context_only"):
        with model.reuse_context():
            pass


# ------------------------------------------------------------------ one set of sampling settings, every command
@pytest.fixture
def tiny_run(tmp_path):
    """An untrained checkpoint (flow_shift 4: not generate's 3) and one quick clip folder: what the commands load."""
    from v4s_lite.checkpoints import save_checkpoint
    from v4s_lite.config import TrainConfig
    from v4s_lite.data import make_dataset
    from v4s_lite.model import build_model

    make_dataset(tmp_path / "data", "grounding", 1, seed=0, clip_cfg="quick", progress=False)
    cfg = TrainConfig(out_dir=str(tmp_path / "run"), clip="quick", model="tiny", device="cpu", progress=False,
                      flow_shift=4.0)
    save_checkpoint(tmp_path / "run", 1, build_model(cfg), cfg=cfg)
    return tmp_path / "run" / "step_000001", tmp_path / "data"


class Reached(Exception):
    """Raised by the stand-in generate(): the settings got there, nothing needs to be sampled."""


def command(name, ckpt, data, out):
    if name == "eval":
        return ["eval", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(out), "--device", "cpu"]
    return ["sample", str(ckpt), "--clip", str(data / "grounding_000000"), "--out", str(out), "--device", "cpu"]


@pytest.mark.parametrize("name", ["eval", "sample"])
@pytest.mark.parametrize("flags, expected", [
    (["--guidance", "text", "--scale", "7.5"],  # the rest at their defaults, the shift the run's flow_shift
     dict(guidance="text", scale=7.5, steps=20, scheduler="unipc", shift=4.0, text_scale=None, context_scale=None)),
    (["--guidance", "three", "--text-scale", "2.5", "--context-scale", "1.5", "--steps", "3", "--scheduler", "euler",
      "--shift", "2"],
     dict(guidance="three", scale=5.0, steps=3, scheduler="euler", shift=2.0, text_scale=2.5, context_scale=1.5)),
])
def test_every_sampling_flag_reaches_generate(tiny_run, tmp_path, monkeypatch, name, flags, expected):
    from v4s_lite import sample
    from v4s_lite.cli import main

    seen = {}

    def fake_generate(*args, **kw):
        seen.update(kw)
        raise Reached

    monkeypatch.setattr(sample, "generate", fake_generate)
    with pytest.raises(Reached):
        main(command(name, *tiny_run, tmp_path / "out") + flags)
    assert {k: seen.get(k) for k in expected} == expected


@pytest.mark.parametrize("name", ["eval", "sample"])
@pytest.mark.parametrize("flags, message", [
    (["--steps", "0"], "--steps 0"),
    (["--guidance", "joint", "--text-scale", "2"], "--text-scale"),
    (["--shift", "-1"], "--shift"),
    (["--scheduler", "DDIMScheduler"], "flow"),
])
def test_a_bad_sampling_setting_is_refused_before_loading_anything(tmp_path, capsys, name, flags, message):
    """Checked when the command starts (the checkpoint here does not even exist), with what to give instead."""
    from v4s_lite.cli import main

    assert main(command(name, tmp_path / "nowhere", tmp_path, tmp_path / "out") + flags) == 2
    err = capsys.readouterr().err
    assert message in err and "nowhere" not in err


def test_sampling_settings_are_one_definition():
    """generate()'s keyword defaults are SamplingSettings' (no second copy to drift), and the settings check
    themselves when made in code too."""
    import inspect

    from v4s_lite.sample import DEFAULT_SHIFT, SamplingSettings

    params = inspect.signature(generate).parameters
    for f in SamplingSettings.__dataclass_fields__.values():
        want = DEFAULT_SHIFT if f.name == "shift" else f.default
        assert params[f.name].default == want, f.name
    assert SamplingSettings(guidance="text").for_run(None).shift == DEFAULT_SHIFT
    with pytest.raises(V4SError, match="guidance"):
        SamplingSettings(guidance="double")

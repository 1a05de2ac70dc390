"""The trainer settings users of DiffSynth-Studio, musubi-tuner and ai-toolkit expect (issue 14): TensorBoard through
accelerate's trackers, checkpoint rotation, gradient accumulation (= one big batch), fp32 LoRA over a bf16 base,
validation videos every N steps. Each on the tiny model, on the CPU."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_train import NULL, fake_items, small_cfg, transformer_state

from v4s_lite.checkpoints import latest_checkpoint, list_checkpoints, rotate_checkpoints
from v4s_lite.config import TrainConfig
from v4s_lite.flow import DeviceBatches, StepBatches
from v4s_lite.train import read_log, train
from v4s_lite.utils import V4SError

pytestmark = pytest.mark.usefixtures("one_thread")


def scalars(run_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(Path(run_dir) / "tensorboard"))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


# ------------------------------------------------------------------------------------------ TensorBoard
def test_tensorboard_holds_the_logged_losses(tmp_path):
    pytest.importorskip("tensorboard")
    run = train(small_cfg(tmp_path, steps=4, log_every=2, log_with="tensorboard"), items=fake_items(),
                null_text=NULL)
    log = read_log(run)
    assert [r["step"] for r in log] == [2, 3, 4]  # log steps and the step-3 checkpoint
    assert all(r["samples_per_s"] > 0 for r in log)
    got = scalars(run, "loss")
    assert [s for s, _ in got] == [2, 3, 4]
    np.testing.assert_allclose([v for _, v in got], [r["loss"] for r in log], rtol=1e-6)
    assert [s for s, _ in scalars(run, "lr")] == [2, 3, 4]


def test_tensorboard_after_a_resume_holds_each_step_once(tmp_path):
    """Resuming from an earlier checkpoint logs its later steps again: TensorBoard drops the first run's copies
    (purge_step), as loss.jsonl does."""
    pytest.importorskip("tensorboard")
    cfg = small_cfg(tmp_path, steps=4, checkpoint_every=2, log_with="tensorboard")
    train(cfg, items=fake_items(), null_text=NULL)
    first = dict(scalars(tmp_path, "loss"))
    train(cfg, resume=tmp_path / "step_000002", items=fake_items(), null_text=NULL)
    got = scalars(tmp_path, "loss")
    assert [s for s, _ in got] == [1, 2, 3, 4]
    np.testing.assert_allclose([v for _, v in got], [first[s] for s in (1, 2, 3, 4)], rtol=1e-5)
    assert [r["step"] for r in read_log(tmp_path)] == [1, 2, 3, 4]


def test_tensorboard_missing_is_a_clear_error(tmp_path, monkeypatch):
    import accelerate.utils

    monkeypatch.setattr(accelerate.utils, "is_tensorboard_available", lambda: False)
    with pytest.raises(V4SError, match="pip install tensorboard"):
        train(small_cfg(tmp_path, log_with="tensorboard"), items=fake_items(), null_text=NULL)
    with pytest.raises(V4SError, match="log_with"):
        TrainConfig(log_with="wandb")


# ------------------------------------------------------------------------------------------ rotation
def test_rotation_keeps_the_last_k_and_the_listed_steps_and_resume_still_works(tmp_path):
    items = fake_items()
    kw = dict(checkpoint_every=1, keep_checkpoints=2, keep_steps=[3], ema_decay=0.9)
    train(small_cfg(tmp_path / "part", steps=7, **kw), items=items, null_text=NULL)
    assert [p.name for p in list_checkpoints(tmp_path / "part")] == ["step_000003", "step_000006", "step_000007"]
    resumed = train(small_cfg(tmp_path / "part", steps=9, **kw), resume=True, items=items, null_text=NULL)
    assert [p.name for p in list_checkpoints(resumed)] == ["step_000003", "step_000008", "step_000009"]
    full = train(small_cfg(tmp_path / "full", steps=9, checkpoint_every=1, ema_decay=0.9), items=items, null_text=NULL)
    assert len(list_checkpoints(full)) == 9  # keep_checkpoints=0: every one stays
    a, b = transformer_state(full / "step_000009"), transformer_state(resumed / "step_000009")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0, msg=k)


def test_rotation_never_deletes_the_checkpoint_just_written(tmp_path):
    for step in (2, 4, 6):  # a resume from step 2 re-writes step 4 while step 6 of the first run still exists
        (tmp_path / f"step_{step:06d}").mkdir()
    assert rotate_checkpoints(tmp_path, 0) == []
    gone = rotate_checkpoints(tmp_path, 1, current=4)
    assert [p.name for p in gone] == ["step_000002"]
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000004", "step_000006"]


def test_bad_rotation_settings_are_errors():
    with pytest.raises(V4SError, match="keep_checkpoints"):
        TrainConfig(keep_checkpoints=-1)
    with pytest.raises(V4SError, match="only matters with keep_checkpoints"):
        TrainConfig(keep_steps=[50])
    with pytest.raises(V4SError, match="checkpoint_every"):
        TrainConfig(keep_checkpoints=2, keep_steps=[7], checkpoint_every=5)
    with pytest.raises(V4SError, match="keep_steps"):
        TrainConfig(keep_checkpoints=2, keep_steps="50")


# ------------------------------------------------------------------------------------------ precision
def test_a_second_run_in_one_process_may_change_mixed_precision(tmp_path):
    """accelerate fixes a process's precision at its first Accelerator; a notebook that trains in bf16 and then in
    fp32 must get the fp32 run it asked for (the same losses as the fp32 run before the bf16 one), not "restart
    your runtime"."""
    items = fake_items(n=4)
    runs = [train(small_cfg(tmp_path / f"r{k}", steps=3, checkpoint_every=3, mixed_precision=mp), items=items,
                  null_text=NULL) for k, mp in enumerate(("no", "bf16", "no"))]
    losses = [[r["loss"] for r in read_log(run)] for run in runs]
    assert losses[2] == losses[0]  # bit for bit: nothing of the bf16 run leaked into the last one
    assert losses[1] != losses[0]  # and the bf16 run did run under bf16 autocast


# ------------------------------------------------------------------------------------------ accumulation
@pytest.mark.parametrize("device_batches", [False, True], ids=["host", "device"])
def test_accumulation_equals_one_big_batch(tmp_path, device_batches):
    """batch 4 in 1, 2 or 4 micro-steps: the same update (weights), the same logged loss (the global batch's mean)
    and gradient norm (a wrongly scaled gradient would show there: AdamW alone is scale invariant)."""
    items = fake_items(n=6)
    runs = {a: train(small_cfg(tmp_path / f"a{a}", batch_size=4, grad_accum_steps=a, steps=5, checkpoint_every=5,
                               device_batches=device_batches), items=items, null_text=NULL) for a in (1, 2, 4)}
    ref, ref_log = transformer_state(runs[1] / "step_000005"), read_log(runs[1])
    for a in (2, 4):
        got = transformer_state(runs[a] / "step_000005")
        for k in ref:
            torch.testing.assert_close(got[k], ref[k], atol=1e-5, rtol=1e-4, msg=f"accum {a}: {k}")
        log = read_log(runs[a])
        np.testing.assert_allclose([r["loss"] for r in log], [r["loss"] for r in ref_log], rtol=1e-5)
        np.testing.assert_allclose([r["grad_norm"] for r in log], [r["grad_norm"] for r in ref_log], rtol=1e-4)


def test_micro_batches_are_the_global_batch_in_order():
    items = fake_items(n=5)
    one, two = small_cfg("unused", batch_size=4), small_cfg("unused", batch_size=4, grad_accum_steps=2)
    whole = StepBatches(items, one, NULL, start=1)[1]  # step 2
    micro = StepBatches(items, two, NULL, start=1)
    assert len(micro) == 2 * len(StepBatches(items, one, NULL, start=1))
    for k in whole:
        torch.testing.assert_close(torch.cat([micro[2][k], micro[3][k]]), whole[k])
    # two processes x two micro-steps: micro-step k holds positions 2k, 2k+1 (rank 0) and ... of the block
    dev = DeviceBatches(items, one, NULL, "cpu")(2)
    shares = [[DeviceBatches(items, small_cfg("unused", batch_size=4, grad_accum_steps=2), NULL, "cpu", rank=r,
                             world=2)(2, k) for r in (0, 1)] for k in (0, 1)]
    for k in dev:
        torch.testing.assert_close(torch.cat([shares[m][r][k] for m in (0, 1) for r in (0, 1)]), dev[k])


def test_bad_accumulation_settings_are_errors():
    with pytest.raises(V4SError, match="multiple of grad_accum_steps"):
        TrainConfig(batch_size=4, grad_accum_steps=3)
    with pytest.raises(V4SError, match="grad_accum_steps"):
        TrainConfig(grad_accum_steps=0)


# ------------------------------------------------------------------------------------------ fp32 LoRA
def test_lora_parameters_are_fp32_over_a_bf16_base():
    from v4s_lite.model import add_lora, build_model

    cfg = small_cfg("unused")
    torch.manual_seed(0)
    model = build_model(cfg).to(torch.bfloat16)
    add_lora(model, small_cfg("unused", lora_rank=4))
    named = dict(model.transformer.named_parameters())
    lora = {k: p for k, p in named.items() if "lora_" in k}
    assert lora and all(p.dtype == torch.float32 and p.requires_grad for p in lora.values())
    base = {k: p for k, p in named.items() if "lora_" not in k}
    assert all(p.dtype == torch.bfloat16 and not p.requires_grad for p in base.values())
    x = fake_items(2, seed=3)
    args = (torch.stack([i["context_latents"] for i in x]), torch.stack([i["target_latents"][:, :1] for i in x]),
            torch.stack([i["target_latents"][:, 1:] for i in x]), torch.tensor([300.0, 700.0]),
            torch.stack([i["prompt_embeds"] for i in x]), [0, 1, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(*args)
    assert out.shape == args[2].shape and torch.isfinite(out.float()).all()
    out.float().square().mean().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in lora.values())


def test_lora_input_casts_off_under_autocast_same_numbers_fewer_bytes():
    """Under autocast peft's cast of each adapter input to fp32 is undone by autocast at once: without it
    (model.lora_input_casts, what train() does under mixed precision) the loss and every adapter gradient are the
    same to the bit, and fewer bytes are copied. Without autocast the casts stay (a bf16 input meets fp32 weights)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from v4s_lite.model import add_lora, build_model, lora_input_casts

    class CopiedBytes(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func is torch.ops.aten._to_copy.default:
                self.n += out.numel() * out.element_size()
            return out

    torch.manual_seed(0)
    model = build_model(small_cfg("unused")).to(torch.bfloat16)
    add_lora(model, small_cfg("unused", lora_rank=4))
    for p in model.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.02)  # lora_B starts at 0: give the gradients something to differ by
    x = fake_items(2, seed=3)
    args = (torch.stack([i["context_latents"] for i in x]), torch.stack([i["target_latents"][:, :1] for i in x]),
            torch.stack([i["target_latents"][:, 1:] for i in x]), torch.tensor([300.0, 700.0]),
            torch.stack([i["prompt_embeds"] for i in x]), [0, 1, 3])
    lora = [p for p in model.parameters() if p.requires_grad]

    def step(casts_off):
        for p in lora:
            p.grad = None
        with lora_input_casts(model, autocast=casts_off), CopiedBytes() as copied:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model(*args).float().square().mean()
            loss.backward()
        return loss.detach(), [p.grad.clone() for p in lora], copied.n

    loss_a, grads_a, bytes_a = step(False)
    loss_b, grads_b, bytes_b = step(True)
    assert torch.equal(loss_a, loss_b) and all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))
    assert bytes_b < 0.8 * bytes_a, (bytes_a, bytes_b)
    assert all(getattr(m, "cast_input_dtype_enabled", True) for m in model.modules())  # restored after


# ------------------------------------------------------------------------------------------ validation
@pytest.fixture(scope="module")
def val_clip(tmp_path_factory):
    from v4s_lite import data

    root = tmp_path_factory.mktemp("val")
    data.make_dataset(root, "grounding", 2, seed=0, clip_cfg="quick", progress=False)
    return str(root / "grounding_000000")


@pytest.fixture(scope="module")
def val_clip2(val_clip):
    return str(Path(val_clip).parent / "grounding_000001")


def test_validation_videos_every_n_steps_with_ema_weights_in_eval_mode(tmp_path, val_clip, val_clip2):
    pytest.importorskip("tensorboard")
    from v4s_lite.model import build_model
    from v4s_lite.sample import validation_hook

    cfg = small_cfg(tmp_path, steps=4, checkpoint_every=2, validate_every=2, validation_clips=[val_clip, val_clip2],
                    validation_steps=2, ema_decay=0.9, log_with="tensorboard")
    hook, seen = validation_hook(cfg), {}

    def on_validate(step, model, run_dir):
        seen[step] = (model.training, torch.is_grad_enabled(),
                      {k: v.clone() for k, v in model.transformer.state_dict().items()})
        return hook(step, model, run_dir)

    torch.manual_seed(0)
    model = build_model(cfg)
    run = train(cfg, model=model, items=fake_items(), null_text=NULL, on_validate=on_validate)
    assert sorted(seen) == [2, 4]
    videos = sorted(p.relative_to(run / "validation").as_posix() for p in (run / "validation").rglob("*.mp4"))
    assert videos == ["step_000002/grounding_000000.mp4", "step_000002/grounding_000001.mp4",
                      "step_000004/grounding_000000.mp4", "step_000004/grounding_000001.mp4"]
    # with two clips, the condition gaps of each validation step (EMA weights), logged beside the loss
    rows = [json.loads(line) for line in (run / "validation.jsonl").read_text().splitlines()]
    probes = ["gap: other instruction", "gap: null instruction", "gap: other room's context", "gap: noise context",
              "gap: shuffled context chunks"]
    ends = ["end " + p for p in probes]  # the same gaps on the walk's last latent frame (the destination)
    layout = ["pure-noise end " + p for p in probes]  # and there at noise 1.0 alone (where sampling lays out the walk)
    assert [r["step"] for r in rows] == [2, 4]
    assert all(sorted(r) == sorted(["step"] + probes + ends + layout) for r in rows)
    assert all(math.isfinite(r[p]) and r[p] > -1 for r in rows for p in probes)  # relative gaps: loss >= 0
    assert (run / "validation" / "step_000004" / "grounding_000000.json").exists()
    for step, (training, grad, state) in seen.items():
        assert not training and not grad
        ema = load_file(next((run / f"step_{step:06d}" / "transformer_ema").glob("*.safetensors")))
        for k in ema:
            torch.testing.assert_close(state[k], ema[k], atol=0, rtol=0, msg=k)
    # after validation the raw weights are back and the model trains again
    assert model.training
    raw = transformer_state(run / "step_000004")
    assert all(torch.equal(model.transformer.state_dict()[k], raw[k]) for k in raw)
    assert not all(torch.equal(seen[4][2][k], raw[k]) for k in raw), "EMA weights should differ from the raw ones"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Images("validation/grounding_000000")] == [2, 4]
    assert [e.step for e in acc.Scalars("validation/gap: other room's context")] == [2, 4]
    # the logged gaps are flow.condition_gaps of the EMA weights on the clips encoded as training encodes them
    from v4s_lite.codec import build_codecs
    from v4s_lite.flow import condition_gaps
    from v4s_lite.latents import encode_clip
    from v4s_lite.sample import load_example

    codec, text = build_codecs(cfg)
    box = cfg.clip_config.box_frames if cfg.box_frames else 0
    items = [{k: v.float() if torch.is_tensor(v) else v for k, v in
              encode_clip(load_example(f, cfg.clip_config, cfg.sampling, cfg.seed), codec, text, box).items()}
             for f in (val_clip, val_clip2)]
    model.transformer.load_state_dict(seen[4][2])
    model.eval()
    with torch.no_grad():
        ref = condition_gaps(model, items, text.encode([""])[0].float(), seed=cfg.seed)
    for probe in probes:
        assert rows[1][probe] == pytest.approx(ref[probe[len("gap: "):] + " gap"], rel=1e-5, abs=1e-7), probe
        end = ref[probe[len("gap: "):] + " gap by frame"][-1]
        assert rows[1]["end " + probe] == pytest.approx(end, rel=1e-5, abs=1e-7), probe
    with torch.no_grad():
        pure = condition_gaps(model, items, text.encode([""])[0].float(), sigmas=(1.0,), seed=cfg.seed)
    for probe in probes:
        end = pure[probe[len("gap: "):] + " gap by frame"][-1]
        assert rows[1]["pure-noise end " + probe] == pytest.approx(end, rel=1e-5, abs=1e-7), probe
        assert rows[1]["pure-noise end " + probe] != rows[1]["end " + probe]  # measured at its own noise level


def test_samples_per_s_counts_the_steps_not_the_validation_between_them(tmp_path, val_clip, val_clip2):
    """A validation that takes a second (here: a hook that sleeps) must not show as a slow training window in the
    log row after it (results/gpu_2026-12-04b: 3.93 samples/s logged where the steps ran at ~1,000)."""
    import time

    cfg = small_cfg(tmp_path, steps=12, log_every=2, checkpoint_every=100, validate_every=4,
                    validation_clips=[val_clip, val_clip2])

    def slow_validation(step, model, run_dir):
        time.sleep(1.0)

    train(cfg, items=fake_items(), null_text=NULL, on_validate=slow_validation)
    rows = [json.loads(line) for line in (tmp_path / "loss.jsonl").read_text().splitlines()]
    rates = {r["step"]: r["samples_per_s"] for r in rows}
    steady = sorted(rates[s] for s in (2, 4, 8, 12))  # windows with no validation inside them
    after = [rates[s] for s in (6, 10)]  # the windows right after a validation (steps 4 and 8)
    assert min(after) > 0.3 * steady[len(steady) // 2], rates


def test_validation_settings_are_checked_and_wired_into_v4s_train(tmp_path):
    from v4s_lite import sample
    from v4s_lite.cli import build_parser

    with pytest.raises(V4SError, match="validation_clips is empty"):
        TrainConfig(validate_every=2)
    with pytest.raises(V4SError, match="validate_every=0"):
        TrainConfig(validation_clips=["data/quick/grounding_000000"])
    with pytest.raises(V4SError, match="validation_steps"):
        TrainConfig(validate_every=2, validation_clips=["x"], validation_steps=0)
    cfg = small_cfg(tmp_path, validate_every=2, validation_clips=[str(tmp_path / "nothing")])
    with pytest.raises(V4SError, match="needs a validation hook"):
        train(cfg, items=fake_items(), null_text=NULL)
    with pytest.raises(V4SError, match="not a clip folder"):
        sample.validation_hook(cfg)
    assert build_parser().parse_args(["train", "configs/quick.yaml"]).validation_hook is sample.validation_hook

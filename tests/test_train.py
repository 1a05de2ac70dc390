"""Flow-matching training: the noise schedule against diffusers, exact resume, two processes = one,
divergence handling, LoRA and full checkpoints loading back through diffusers / peft."""
import json
import os
import shutil
import signal
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
from safetensors.torch import load_file

from v4s_lite.checkpoints import latest_checkpoint
from v4s_lite.config import TrainConfig, load_config
from v4s_lite.flow import add_noise, batch_indices, flow_target, sample_sigmas, shift_sigmas
from v4s_lite.train import _check_loss, read_log, train
from v4s_lite.utils import TrainingDiverged
from v4s_lite.utils import V4SError

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


def fake_items(n=4, seed=0, fc=3, ft=3, h=4, w=6):
    """Pre-encoded clips in the layout encode_clips / latents.LatentCache produce; the target is a function of
    the context so there is something to learn."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        ctx = torch.randn(12, fc, h, w, generator=g)
        tgt = torch.cat([ctx[:, :1], 0.5 * ctx[:, -(ft - 1):] + 0.1], 1)
        out.append({"context_latents": ctx, "target_latents": tgt, "prompt_embeds": torch.randn(32, 64, generator=g),
                    "context_frame_indices": torch.tensor([0, 4, 5, 6, 7, 12, 13, 14, 15][:1 + 4 * (fc - 1)]),
                    "context_positions": torch.tensor([0, 1, 3][:fc]),
                    "instruction": f"find thing {i}"})
    return out


NULL = torch.zeros(32, 64)


def small_cfg(tmp, **kw):
    base = dict(out_dir=str(tmp), model="tiny", steps=6, batch_size=2, lr=3e-3, warmup_steps=2, checkpoint_every=3,
                progress=False, device="cpu", p_drop_text=0.2, p_drop_context=0.2, p_drop_both=0.2)
    base.update(kw)
    return TrainConfig(**base)


def transformer_state(step_dir):
    return load_file(next((Path(step_dir) / "transformer").glob("*.safetensors")))


# ------------------------------------------------------------------------------------------ schedule
@pytest.mark.parametrize("shift", [1.0, 3.0, 5.0])
def test_shift_is_diffusers_flow_match_shift(shift):
    plain = FlowMatchEulerDiscreteScheduler(shift=1.0).sigmas[:-1]
    shifted = FlowMatchEulerDiscreteScheduler(shift=shift).sigmas[:-1]
    torch.testing.assert_close(shift_sigmas(plain, shift), shifted, atol=1e-6, rtol=0)


def test_add_noise_is_scale_noise_and_target_is_its_derivative():
    sched = FlowMatchEulerDiscreteScheduler(shift=3.0)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 4, 2, 3, 3, generator=g), torch.randn(3, 4, 2, 3, 3, generator=g)
    idx = torch.tensor([5, 400, 990])
    want = sched.scale_noise(x0, sched.timesteps[idx], noise)
    torch.testing.assert_close(add_noise(x0, noise, sched.sigmas[idx]), want, atol=1e-6, rtol=0)
    s, h = torch.tensor([0.3, 0.5, 0.8], dtype=torch.float64), 1e-6
    x0, noise = x0.double(), noise.double()
    finite_diff = (add_noise(x0, noise, s + h) - add_noise(x0, noise, s)) / h
    torch.testing.assert_close(finite_diff, flow_target(x0, noise), atol=1e-6, rtol=0)


def test_sigma_sampling_is_shifted_and_seeded():
    cfg = TrainConfig(flow_shift=3.0)
    s = sample_sigmas(20000, cfg, torch.Generator().manual_seed(0))
    # u ~ U(0,1) has median 0.5; the shift maps it to 3 * 0.5 / (1 + 2 * 0.5) = 0.75: more high-noise steps
    assert abs(float(s.median()) - 0.75) < 0.01
    assert 0 < float(s.min()) and float(s.max()) < 1
    torch.testing.assert_close(sample_sigmas(5, cfg, torch.Generator().manual_seed(1)),
                               sample_sigmas(5, cfg, torch.Generator().manual_seed(1)), atol=0, rtol=0)
    logit = sample_sigmas(20000, TrainConfig(flow_shift=1.0, weighting_scheme="logit_normal"),
                          torch.Generator().manual_seed(0))
    assert abs(float(logit.median()) - 0.5) < 0.01 and float(logit.std()) < float(s.std())


def test_batch_order_is_a_permutation_per_epoch():
    n, bs = 5, 3
    flat = sum((batch_indices(n, bs, step, seed=7) for step in range(5)), [])  # 15 positions = 3 epochs
    epochs = [flat[i:i + n] for i in range(0, 15, n)]
    assert all(sorted(e) == list(range(n)) for e in epochs)
    assert len({tuple(e) for e in epochs}) > 1, "each epoch should have its own order"
    assert batch_indices(n, bs, 3, seed=7) == flat[9:12]


# ------------------------------------------------------------------------------------------ configs
@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    if "wan22" in path.name:
        pytest.skip("the full-model engineer's config")
    cfg = load_config(path)
    assert cfg.steps > 0 and cfg.clip_config.target_latents > 1


def test_bad_config_says_what_is_wrong(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("steps: 3\nlearning_rate: 0.1\n")
    with pytest.raises(V4SError, match="learning_rate"):
        load_config(p)
    with pytest.raises(V4SError, match="sampling"):
        load_config(None, sampling="random")
    with pytest.raises(V4SError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


# ------------------------------------------------------------------------------------------ training
def test_resume_equals_uninterrupted(tmp_path):
    items = fake_items()
    full = train(small_cfg(tmp_path / "full", ema_decay=0.9), items=items, null_text=NULL)
    part = small_cfg(tmp_path / "part", ema_decay=0.9, steps=3)
    train(part, items=items, null_text=NULL)  # "interrupted" after step 3 (its last checkpoint)
    (tmp_path / "part" / "loss.jsonl").open("a").write('{"step": 4, "loss": 99.0}\n')  # a step lost in a crash
    resumed = train(small_cfg(tmp_path / "part", ema_decay=0.9), resume=True, items=items, null_text=NULL)
    a, b = transformer_state(full / "step_000006"), transformer_state(resumed / "step_000006")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0, msg=k)
    ema_a = load_file(next((full / "step_000006" / "transformer_ema").glob("*.safetensors")))
    ema_b = load_file(next((resumed / "step_000006" / "transformer_ema").glob("*.safetensors")))
    for k in ema_a:
        torch.testing.assert_close(ema_a[k], ema_b[k], atol=1e-6, rtol=0)
    la, lb = read_log(full), read_log(resumed)
    assert [r["step"] for r in lb] == list(range(1, 7))
    np.testing.assert_allclose([r["loss"] for r in la], [r["loss"] for r in lb], atol=1e-6, rtol=0)
    # and training did something: the weights moved away from the step-3 checkpoint
    mid = transformer_state(full / "step_000003")
    assert any((mid[k] - a[k]).abs().max() > 1e-4 for k in a)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_a_decaying_lr_follows_diffusers_and_resumes_on_the_same_curve(tmp_path, schedule):
    from diffusers.optimization import get_scheduler
    items = fake_items()
    full = train(small_cfg(tmp_path / "full", lr_schedule=schedule), items=items, null_text=NULL)
    ref = get_scheduler(schedule, torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=3e-3),  # diffusers' name
                        num_warmup_steps=2, num_training_steps=6)
    want = []
    for _ in range(6):  # the rate logged with a step is the one the next step uses (after lr_scheduler.step())
        ref.optimizer.step()
        ref.step()
        want.append(ref.get_last_lr()[0])
    got = [r["lr"] for r in read_log(full)]
    np.testing.assert_allclose(got, want, atol=1e-9, rtol=0)
    assert got[-1] == 0 and max(got) == pytest.approx(3e-3)  # decayed to 0 at `steps`, from the full rate
    # the same run stopped after step 3 (its checkpoint and log cut there), resumed: the same curve and weights
    part = tmp_path / "part"
    shutil.copytree(full, part)
    shutil.rmtree(part / "step_000006")
    rows = (part / "loss.jsonl").read_text().splitlines()
    (part / "loss.jsonl").write_text("\n".join(r for r in rows if json.loads(r).get("step", 0) <= 3) + "\n")
    resumed = train(small_cfg(part, lr_schedule=schedule), resume=True, items=items, null_text=NULL)
    np.testing.assert_allclose([r["lr"] for r in read_log(resumed)], want, atol=1e-9, rtol=0)
    a, b = transformer_state(full / "step_000006"), transformer_state(resumed / "step_000006")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0, msg=k)
    with pytest.raises(V4SError, match="lr_schedule='step'.*constant"):
        small_cfg(tmp_path / "bad", lr_schedule="step")
    with pytest.raises(V4SError, match="warmup_steps=6: set warmup_steps below steps"):
        small_cfg(tmp_path / "bad", lr_schedule="linear", warmup_steps=6)


def test_batch_workers_train_exactly_like_the_loop(tmp_path):
    """Batches built ahead in 2 worker processes = batches built in the loop (every draw is seeded by step)."""
    items = fake_items()
    a = train(small_cfg(tmp_path / "loop", steps=4, checkpoint_every=4), items=items, null_text=NULL)
    b = train(small_cfg(tmp_path / "workers", steps=4, checkpoint_every=4, batch_workers=2), items=items,
              null_text=NULL)
    assert [r["loss"] for r in read_log(a)] == [r["loss"] for r in read_log(b)]
    sa, sb = transformer_state(a / "step_000004"), transformer_state(b / "step_000004")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_encode_clips_in_workers_and_from_the_latent_cache(tmp_path, monkeypatch):
    """Encoding in 2 worker processes gives the serial result; a second run loads the saved cache instead of
    decoding any clip; a setting that changes the items (box frames) gets its own cache file."""
    from v4s_lite import data
    from v4s_lite.codec import LiteCodec, LiteTextEncoder
    from v4s_lite.latents import encode_clips, latent_cache_folder

    data.make_dataset(tmp_path / "clips", "grounding", 2, seed=0, clip_cfg="quick", progress=False)
    cfg = TrainConfig(data_root=str(tmp_path / "clips"), clip="quick", context_views=2, progress=False,
                      latent_cache=str(tmp_path / "cache"))
    codec, text = LiteCodec(), LiteTextEncoder()
    serial = encode_clips(TrainConfig(**{**cfg.__dict__, "latent_cache": ""}), codec, text)
    parallel = encode_clips(TrainConfig(**{**cfg.__dict__, "num_workers": 2}), codec, text)
    assert len(serial) == len(parallel) == 4 and latent_cache_folder(cfg, 2).exists()
    for a, b in zip(serial, parallel):
        assert a["instruction"] == b["instruction"]
        for k in ("context_latents", "target_latents", "prompt_embeds", "context_frame_indices"):
            assert torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])), k

    def no_decoding(*a, **k):
        raise AssertionError("the cache should have been used")
    monkeypatch.setattr(data, "read_video", no_decoding)
    cached = encode_clips(cfg, codec, text)
    assert all(torch.equal(a["target_latents"], b["target_latents"]) for a, b in zip(serial, cached))
    nobox = TrainConfig(**{**cfg.__dict__, "box_frames": False})
    assert latent_cache_folder(nobox, 2) != latent_cache_folder(cfg, 2)
    with pytest.raises(AssertionError, match="cache should"):
        encode_clips(nobox, codec, text)
    # other clips rendered into the same folder, as many as before: their own cache, never the replaced clips' latents
    first = latent_cache_folder(cfg, 2)
    shutil.rmtree(tmp_path / "clips")
    data.make_dataset(tmp_path / "clips", "grounding", 2, seed=7, clip_cfg="quick", progress=False)
    assert latent_cache_folder(cfg, 2) != first
    with pytest.raises(AssertionError, match="cache should"):
        encode_clips(cfg, codec, text)
    shutil.rmtree(tmp_path / "clips")  # the same names, another walk in one clip's meta.json
    data.make_dataset(tmp_path / "clips", "grounding", 2, seed=0, clip_cfg="quick", progress=False)
    assert latent_cache_folder(cfg, 2) == first
    meta = tmp_path / "clips" / "grounding_000001" / "meta.json"
    meta.write_text(meta.read_text().replace('"instruction": "', '"instruction": "now '))
    assert latent_cache_folder(cfg, 2) != first


def test_workers_that_only_decode_give_the_items_of_workers_that_encode(tmp_path):
    """The GPU path (workers decode, this process encodes with the one codec) = the CPU path (workers do both)."""
    from v4s_lite import data
    from v4s_lite.codec import LiteCodec, LiteTextEncoder
    from v4s_lite.config import get_clip_config
    from v4s_lite.latents import encoded_items

    data.make_dataset(tmp_path / "clips", "grounding", 3, seed=0, clip_cfg="quick", progress=False)
    ds = data.ClipDataset(tmp_path / "clips", get_clip_config("quick"), seed=0)
    codec, text = LiteCodec(), LiteTextEncoder()
    both = list(encoded_items(ds, [2, 0], codec, text, 2, num_workers=2, encode_in_workers=True))
    decode_only = list(encoded_items(ds, [2, 0], codec, text, 2, num_workers=2, encode_in_workers=False))
    assert [x["instruction"] for x in both] == [x["instruction"] for x in decode_only] == \
        [ds[2]["instruction"], ds[0]["instruction"]]
    for a, b in zip(both, decode_only):
        for k in ("context_latents", "target_latents", "prompt_embeds", "context_frame_indices"):
            assert torch.equal(a[k], b[k]), k


INTERRUPT_SCRIPT = """
import os, signal, sys
sys.path[:0] = [{tests!r}, {root!r}]  # this checkout's package, also when another one is pip-installed
from test_train import NULL, fake_items, small_cfg
import v4s_lite.flow as F
import v4s_lite.train as T
real = F.make_batch
def make_batch(items, idx, pos, cfg, step, null):  # Ctrl-C arrives while step 3 is being computed, twice in a
    if step == 2:                                      # row, as GNU timeout sends it (the process, then its group)
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
    return real(items, idx, pos, cfg, step, null)
F.make_batch = make_batch
T.train(small_cfg(sys.argv[1], steps=50, checkpoint_every=40, ema_decay=0.9), items=fake_items(), null_text=NULL)
"""


def test_a_second_interrupt_stops_at_once_only_after_the_grace_time(monkeypatch):
    """The same request arriving twice within GRACE_S (timeout's copy) is one request; a second Ctrl-C later stops."""
    from v4s_lite import train as T

    clock = [100.0]
    monkeypatch.setattr(T.time, "monotonic", lambda: clock[0])
    with T._StopOnInterrupt() as stop:
        stop._handle(signal.SIGINT, None)
        clock[0] += 0.01
        stop._handle(signal.SIGINT, None)
        assert stop.requested
        clock[0] += stop.GRACE_S + 0.5
        with pytest.raises(KeyboardInterrupt):
            stop._handle(signal.SIGINT, None)


def test_interrupt_finishes_the_step_saves_and_resumes_exactly(tmp_path):
    """SIGINT (Ctrl-C, a notebook interrupt, `timeout -s INT`, which may deliver it twice) ends training after the
    current step with a checkpoint there, and --resume from it continues exactly like an uninterrupted run."""
    import subprocess
    import sys

    script = tmp_path / "interrupt.py"
    script.write_text(INTERRUPT_SCRIPT.format(tests=str(ROOT / "tests"), root=str(ROOT)))
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "cut")], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "interrupted: stopped after step 3" in r.stdout
    assert latest_checkpoint(tmp_path / "cut").name == "step_000003"
    items = fake_items()
    resumed = train(small_cfg(tmp_path / "cut", steps=6, ema_decay=0.9), resume=True, items=items, null_text=NULL)
    full = train(small_cfg(tmp_path / "full", steps=6, ema_decay=0.9), items=items, null_text=NULL)
    a, b = transformer_state(full / "step_000006"), transformer_state(resumed / "step_000006")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0, msg=k)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(script: str, n: int, *args, tmp: Path) -> str:
    """Run `script` (a template with {tests} / {root}) in n gloo CPU processes under torchrun and return its output.
    (Not `accelerate launch --cpu --num_processes n`: accelerate 1.16 runs that as ONE process.) Each script ends
    with REPORT_WORLD, so a run that silently fell back to one process fails here."""
    import subprocess
    import sys

    path = tmp / f"script_{abs(hash(script))}.py"
    path.write_text(script.format(tests=str(Path(__file__).parent), root=str(ROOT)) + REPORT_WORLD)
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(n),
                          "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(path), *map(str, args)],
                         capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(line for line in run.stdout.splitlines() if line.startswith("world ")) == \
        [f"world {n} rank {r}" for r in range(n)], run.stdout[-2000:]
    return run.stdout


REPORT_WORLD = """
from accelerate import PartialState
import sys as _sys  # one write per line: processes share the pipe, and print() writes text and newline apart
_sys.stdout.write(f"world {PartialState().num_processes} rank {PartialState().process_index}\\n"); _sys.stdout.flush()
# as `v4s` does at its end (cli._end_process_group): gloo's threads outliving the interpreter abort the process at exit
PartialState().destroy_process_group()
"""

TWO_PROCESS_SCRIPT = """
import sys
sys.path[:0] = [{tests!r}, {root!r}]  # this checkout's package, also when another one is pip-installed
from test_train import NULL, fake_items, small_cfg
from v4s_lite.train import train
steps, accum, every = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
train(small_cfg(sys.argv[1], batch_size=4, steps=steps, grad_accum_steps=accum, checkpoint_every=every),
      items=fake_items(), null_text=NULL)
"""


@pytest.mark.slow
@pytest.mark.parametrize("accum", [1, 2])
def test_two_processes_equal_one(tmp_path, accum):
    """DDP over 2 CPU processes (torchrun, gloo) with 2 samples each = 1 process with 4 samples;
    with grad_accum_steps=2 each process runs two micro-steps of 1 sample (gradients synced once, on the last)."""
    one = train(small_cfg(tmp_path / "one", batch_size=4, steps=3), items=fake_items(), null_text=NULL)
    launch(TWO_PROCESS_SCRIPT, 2, tmp_path / "two", 3, accum, 3, tmp=tmp_path)
    a, b = transformer_state(one / "step_000003"), transformer_state(tmp_path / "two" / "step_000003")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=2e-5, rtol=0, msg=k)
    np.testing.assert_allclose([r["loss"] for r in read_log(one)], [r["loss"] for r in read_log(tmp_path / "two")],
                               atol=1e-5, rtol=0)


@pytest.mark.slow
def test_checkpoint_of_two_processes_resumes_in_one(tmp_path):
    """4 steps in 2 processes, resumed to 6 in 1 process = 6 steps in 1 process: every draw is a function of
    (seed, step, global position), never of the process count, and the checkpoint holds whole weights."""
    launch(TWO_PROCESS_SCRIPT, 2, tmp_path / "mixed", 4, 1, 2, tmp=tmp_path)
    assert latest_checkpoint(tmp_path / "mixed").name == "step_000004"
    items = fake_items()
    cfg = dict(batch_size=4, steps=6, checkpoint_every=2)
    resumed = train(small_cfg(tmp_path / "mixed", **cfg), resume=True, items=items, null_text=NULL)
    one = train(small_cfg(tmp_path / "one", **cfg), items=items, null_text=NULL)
    a, b = transformer_state(one / "step_000006"), transformer_state(resumed / "step_000006")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=2e-5, rtol=0, msg=k)
    assert any((a[k] - transformer_state(one / "step_000004")[k]).abs().max() > 1e-4 for k in a)  # steps 5-6 moved
    np.testing.assert_allclose([r["loss"] for r in read_log(one)], [r["loss"] for r in read_log(resumed)],
                               atol=1e-5, rtol=0)


ENCODE_SCRIPT = """
import sys
sys.path[:0] = [{tests!r}, {root!r}]
import v4s_lite.latents as T
from v4s_lite.cli import main
encoded = []
real = T.encode_clip
def encode_clip(item, *a, **k):  # which clips (and which context draw) this process encodes
    encoded.append((item["instruction"], tuple(int(i) for i in item["context_frame_indices"])))
    return real(item, *a, **k)
T.encode_clip = encode_clip
assert main(["train", sys.argv[1], "--encode-only", "--set", "data_root=" + sys.argv[2], "--set",
             "latent_cache=" + sys.argv[3], "--set", "device=cpu", "--set", "progress=false"]) == 0
from accelerate import PartialState
sys.stdout.write(f"encoded {{PartialState().process_index}} {{encoded!r}}\\n"); sys.stdout.flush()  # one write
"""


@pytest.mark.slow
def test_two_processes_fill_the_latent_cache_in_one_pass(tmp_path):
    """`v4s train --encode-only` in 2 processes: each encodes only its half of the items (no rank waits for
    another's clips), and the cache is byte for byte the one 1 process writes (item files, null, manifest)."""
    import ast
    from v4s_lite import data
    from v4s_lite.latents import latent_cache_folder, n_clips

    data.make_dataset(tmp_path / "clips", "grounding", 3, seed=0, clip_cfg="quick", progress=False)
    config = str(ROOT / "configs" / "quick.yaml")
    runs = {}
    for n in (1, 2):
        out = launch(ENCODE_SCRIPT, n, config, tmp_path / "clips", tmp_path / f"cache{n}", tmp=tmp_path)
        runs[n] = {int(line.split()[1]): ast.literal_eval(line.split(" ", 2)[2])
                   for line in out.splitlines() if line.startswith("encoded ")}
    cfg = load_config(config, data_root=str(tmp_path / "clips"), latent_cache=str(tmp_path / "cache1"))
    n_items = n_clips(cfg) * cfg.context_views
    assert n_items == 6 and len(runs[1][0]) == 6
    assert [len(runs[2][r]) for r in (0, 1)] == [3, 3]  # each process its share: items 0, 2, 4 and 1, 3, 5
    assert runs[2][0] == runs[1][0][0::2] and runs[2][1] == runs[1][0][1::2]
    one = latent_cache_folder(cfg, n_clips(cfg))
    two = Path(str(one).replace(str(tmp_path / "cache1"), str(tmp_path / "cache2")))
    names = sorted(f.name for f in one.iterdir())
    assert names == sorted(f.name for f in two.iterdir()) and "cache.json" in names and len(names) == n_items + 2
    for name in names:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


def test_an_unfinished_cache_is_not_complete(tmp_path):
    """Items written but a process missing: finish_latent_cache refuses and leaves no manifest."""
    from v4s_lite.latents import LatentCache, finish_latent_cache, start_latent_cache, write_cache_items

    folder = start_latent_cache(tmp_path / "c")
    write_cache_items(folder, [(0, fake_items(1)[0]), (2, fake_items(1)[0])])
    with pytest.raises(V4SError, match=r"item files \[1\] are missing"):
        finish_latent_cache(folder, NULL, 3)
    assert not (folder / "cache.json").exists()
    with pytest.raises(V4SError, match="no cache.json"):
        LatentCache(folder)
    write_cache_items(folder, [(1, fake_items(1)[0])])
    assert len(LatentCache(finish_latent_cache(folder, NULL, 3))) == 3


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    items = fake_items()
    order = sum((batch_indices(len(items), 1, s, seed=0) for s in range(8)), [])
    bad = order[2]  # corrupt the clip of step 3 (and of none before it)
    items[bad]["target_latents"] = items[bad]["target_latents"].clone()
    items[bad]["target_latents"][0, 1, 0, 0] = float("nan")
    bad_step = order.index(bad) + 1
    cfg = small_cfg(tmp_path, batch_size=1, steps=8, checkpoint_every=1)
    with pytest.raises(TrainingDiverged, match=f"step {bad_step}: the loss is nan") as e:
        train(cfg, items=items, null_text=NULL)
    last = latest_checkpoint(tmp_path)
    assert last.name == f"step_{bad_step - 1:06d}" and str(last) in str(e.value)
    assert all(torch.isfinite(v).all() for v in transformer_state(last).values())
    assert [r["step"] for r in read_log(tmp_path)] == list(range(1, bad_step))


def test_exploding_loss_is_caught():
    cfg = TrainConfig(explode_factor=100.0)
    _check_loss(50.0, [1.0] * 10, cfg, 10, None)  # a bad batch, not an explosion
    with pytest.raises(TrainingDiverged, match="exploded"):
        _check_loss(1000.0, [1.0] * 10, cfg, 10, "runs/x/step_000010")


def test_full_checkpoint_loads_with_diffusers(tmp_path):
    from v4s_lite.model import V4SModel

    run = train(small_cfg(tmp_path, steps=2, checkpoint_every=2), items=fake_items(), null_text=NULL)
    folder = run / "step_000002" / "transformer"
    plain = WanTransformer3DModel.from_pretrained(folder)  # diffusers' own loader, no v4s code
    saved = transformer_state(run / "step_000002")
    for k, v in plain.state_dict().items():
        if k in saved:
            torch.testing.assert_close(v, saved[k], atol=0, rtol=0)
    fresh = V4SModel.from_preset("tiny").transformer.state_dict()
    assert any((fresh[k] - saved[k]).abs().max() > 0 for k in saved), "trained weights differ from a fresh init"
    V4SModel.from_pretrained(folder)
    meta = json.loads((run / "step_000002" / "trainer_state.json").read_text())
    assert meta["step"] == 2 and meta["config"]["model"] == "tiny"


def test_lora_trains_only_adapters_and_loads_back(tmp_path):
    from peft import get_peft_model_state_dict

    from v4s_lite.checkpoints import load_model
    from v4s_lite.model import V4SModel, build_model

    cfg = small_cfg(tmp_path, lora_rank=4, steps=2, checkpoint_every=2, lr=1e-2)
    torch.manual_seed(0)
    model = build_model(cfg)
    base = {k: v.clone() for k, v in model.transformer.state_dict().items() if "lora_" not in k}
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert 0 < n_train < 0.5 * sum(p.numel() for p in model.parameters())
    run = train(cfg, model=model, items=fake_items(), null_text=NULL)
    after = model.transformer.state_dict()
    for k, v in base.items():
        torch.testing.assert_close(after[k], v, atol=0, rtol=0, msg=f"{k} is frozen under LoRA")
    lora = get_peft_model_state_dict(model.transformer)
    assert any("lora_B" in k and v.abs().max() > 0 for k, v in lora.items()), "LoRA B moved from its zero init"
    # reload: the base model rebuilt from the config, the adapter through diffusers' load_lora_adapter
    torch.manual_seed(0)  # the base is the same random init here; with a real base it is from_pretrained
    loaded, *_ = load_model(run / "step_000002", device="cpu")
    x = fake_items(2, seed=5)
    args = (torch.stack([i["context_latents"] for i in x]), torch.stack([i["target_latents"][:, :1] for i in x]),
            torch.stack([i["target_latents"][:, 1:] for i in x]), torch.tensor([300.0, 700.0]),
            torch.stack([i["prompt_embeds"] for i in x]), [0, 1, 3])
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(*args), model(*args), atol=1e-5, rtol=0)
    assert isinstance(loaded, V4SModel)
    # --resume's path: the adapter state goes back into a fresh LoRA model through peft
    from v4s_lite.checkpoints import load_checkpoint

    torch.manual_seed(0)
    again = build_model(cfg)
    assert load_checkpoint(run / "step_000002", again) == 2
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(*args), model(*args), atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------- batches built on the device
def test_device_batches_have_the_loops_layout_and_are_a_function_of_the_step():
    """DeviceBatches (the GPU path, here on the CPU) gives the same keys, shapes, clip order and clean parts as
    StepBatches; its own random draws are a pure function of (seed, step); two processes' shares = one batch."""
    from v4s_lite.flow import DeviceBatches, StepBatches

    items = fake_items(n=5)
    cfg = small_cfg("unused", batch_size=4, p_drop_text=0.0, p_drop_context=0.0, p_drop_both=0.0)
    ref = StepBatches(items, cfg, NULL, start=0)[3]
    dev = DeviceBatches(items, cfg, NULL, "cpu")
    got = dev(3)
    assert got.keys() == ref.keys()
    for k in ref:
        assert got[k].shape == ref[k].shape, k
    # same clips in the same order: the clean first latents and (with no dropout) the context are identical
    torch.testing.assert_close(got["first"], ref["first"])
    torch.testing.assert_close(got["context"], ref["context"])
    assert torch.equal(got["positions"], ref["positions"])
    again = DeviceBatches(items, cfg, NULL, "cpu")(3)
    assert all(torch.equal(got[k], again[k]) for k in got)
    assert not torch.equal(dev(4)["noisy"], got["noisy"])
    halves = [DeviceBatches(items, cfg, NULL, "cpu", rank=r, world=2)(3) for r in (0, 1)]
    for k in got:
        torch.testing.assert_close(torch.cat([h[k] for h in halves]), got[k])
    # x_sigma and the velocity come from one x0 and one noise: x0 = x_sigma - sigma * v
    s = got["sigma"].view(-1, 1, 1, 1, 1)
    x0 = got["noisy"] - s * got["velocity"]
    tgt = torch.stack([items[i]["target_latents"][:, 1:] for i in dev.indices(3).tolist()])
    torch.testing.assert_close(x0, tgt, atol=1e-5, rtol=0)


def test_device_batches_drop_conditions_at_the_configured_rates():
    from v4s_lite.flow import DeviceBatches

    items = fake_items(n=8)
    cfg = small_cfg("unused", batch_size=64, p_drop_text=0.1, p_drop_context=0.2, p_drop_both=0.3)
    dev = DeviceBatches(items, cfg, NULL, "cpu")
    text_dropped = ctx_dropped = 0
    for step in range(40):
        b = dev(step)
        idx = dev.indices(step)
        ctx = torch.stack([items[i]["context_latents"] for i in idx.tolist()])
        text = torch.stack([items[i]["prompt_embeds"] for i in idx.tolist()])
        ctx_dropped += int((b["context"] != ctx).flatten(1).any(1).sum())
        text_dropped += int((b["text"] != text).flatten(1).any(1).sum())
    n = 40 * 64
    assert abs(text_dropped / n - 0.4) < 0.04 and abs(ctx_dropped / n - 0.5) < 0.04


def test_device_batch_training_resumes_exactly_and_logs_at_log_steps(tmp_path):
    items = fake_items()
    kw = dict(device_batches=True, ema_decay=0.9, log_every=2)
    full = train(small_cfg(tmp_path / "full", **kw), items=items, null_text=NULL)
    train(small_cfg(tmp_path / "part", steps=3, **kw), items=items, null_text=NULL)
    resumed = train(small_cfg(tmp_path / "part", **kw), resume=True, items=items, null_text=NULL)
    a, b = transformer_state(full / "step_000006"), transformer_state(resumed / "step_000006")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0, msg=k)
    # the host reads the loss at log steps and checkpoints only (a window mean), not at every step
    assert [r["step"] for r in read_log(full)] == [2, 3, 4, 6]
    assert read_log(full / "loss.jsonl") == read_log(full)  # the log file itself reads the same (results/ keeps logs)
    import lzma

    (tmp_path / "loss.jsonl.xz").write_bytes(lzma.compress((full / "loss.jsonl").read_bytes()))
    assert read_log(tmp_path / "loss.jsonl.xz") == read_log(full)  # and compressed, as results/ keeps long logs


def test_a_log_row_is_read_after_the_next_step_is_queued(tmp_path, monkeypatch):
    """Reading a row's numbers makes the host wait for the GPU, so the loop reads each row one step late (the next
    step's work already queued) and at once only where the step saves: the checks still precede every checkpoint."""
    import v4s_lite.train as T

    events, loss_fn, get = [], T.flow_loss, T._HostCopy.get
    monkeypatch.setattr(T, "flow_loss", lambda *a, **k: (events.append("step"), loss_fn(*a, **k))[1])
    monkeypatch.setattr(T._HostCopy, "get", lambda self: (events.append("read"), get(self))[1])
    run = train(small_cfg(tmp_path, steps=5, log_every=1, checkpoint_every=3), items=fake_items(), null_text=NULL)
    # steps 3 and 5 save: their rows are read at once; rows 1, 2 and 4 after the next step
    assert events == ["step", "step", "read", "step", "read", "read", "step", "step", "read", "read"]
    rows = read_log(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5] and all(np.isfinite(r["loss"]) for r in rows)
    assert all(r["grad_norm"] > 0 for r in rows)


def test_compile_failure_falls_back_to_eager(capsys):
    from v4s_lite.train import _FallbackToEager

    def broken(*a):
        raise RuntimeError("no compiler here")

    f = _FallbackToEager(broken, lambda x: x + 1)
    assert f(1) == 2 and f(2) == 3
    assert "training eagerly" in capsys.readouterr().out


def test_the_log_says_whether_compilation_held(tmp_path, monkeypatch):
    """A loop asked to compile whose compilation fails trains eagerly, and every log row says so ("compiled": false):
    benchmarks/train_loop.py refuses to pass an eager figure off as the compiled loop's (it happened on the H200:
    results/gpu_2026-12-03d). A loop not asked to compile writes no flag; seconds_per_step needs two rows."""
    from v4s_lite.train import seconds_per_step

    def broken(model, *a, **k):
        return lambda *x, **y: (_ for _ in ()).throw(RuntimeError("cannot trace pin_memory"))

    monkeypatch.setattr(torch, "compile", broken)
    log = read_log(train(small_cfg(tmp_path / "c", steps=4, log_every=2, compile=True), items=fake_items(),
                         null_text=NULL))
    assert len(log) >= 2 and all(r["compiled"] is False for r in log)
    log = read_log(train(small_cfg(tmp_path / "e", steps=4, log_every=2), items=fake_items(), null_text=NULL))
    assert all("compiled" not in r for r in log)
    assert seconds_per_step(log) >= 0
    with pytest.raises(V4SError, match="second half"):
        seconds_per_step(log[:1])


def test_seconds_per_step_times_only_the_rows_after_a_resume():
    """A resumed run's log holds both runs' rows and its `seconds` start again from 0 (results/cpu_2026-12-05: the
    5B path's dry run read -16 s per step); only the rows after the last restart in the second half are timed."""
    from v4s_lite.train import seconds_per_step

    first = [{"step": s, "seconds": 10.0 + 2.0 * s} for s in (10, 20, 30, 40, 50)]  # 2 s a step, then interrupted
    resumed = [{"step": s, "seconds": 5.0 + 1.0 * (s - 50)} for s in (60, 70, 80, 90, 100)]  # 1 s a step after resume
    assert seconds_per_step(first + resumed) == pytest.approx(1.0)
    assert seconds_per_step(first) == pytest.approx(2.0)
    with pytest.raises(V4SError, match="second half"):  # one row after the restart: nothing to time
        seconds_per_step(first + [{"step": 60, "seconds": 3.0}])


def test_bad_speed_settings_are_errors():
    with pytest.raises(V4SError, match="device_batches"):
        TrainConfig(device_batches="yes")
    with pytest.raises(V4SError, match="reduce-overhead"):  # the error lists torch.compile's modes
        TrainConfig(compile="maybe")
    with pytest.raises(V4SError, match="block by block"):
        TrainConfig(compile="reduce-overhead", wan={"source": "x"})


def test_compile_auto_means_cuda_graphs_on_one_gpu_only():
    """compile: auto compiles only the lite model on a GPU, with CUDA graphs in one process (measured faster on the
    H200) and torch's default mode under DDP; an explicit mode or true is honoured anywhere, false never compiles."""
    from v4s_lite.train import AUTO_COMPILE_MODE, compile_choice

    assert AUTO_COMPILE_MODE == "reduce-overhead"
    assert compile_choice("auto", on_gpu=True, wan=False) == (True, "reduce-overhead")
    assert compile_choice("auto", on_gpu=True, wan=False, processes=2) == (True, None)
    assert compile_choice("auto", on_gpu=False, wan=False) == (False, None)
    assert compile_choice("auto", on_gpu=True, wan=True) == (False, None)
    assert compile_choice("default", on_gpu=False, wan=False) == (True, "default")
    assert compile_choice(True, on_gpu=False, wan=False) == (True, None)
    assert compile_choice(False, on_gpu=True, wan=False) == (False, None)


def test_a_compile_mode_reaches_torch_compile_and_cuda_graphs_mark_each_step(tmp_path, monkeypatch):
    """compile: reduce-overhead compiles with that mode (CUDA graphs on a GPU) and starts a new CUDA-graph iteration
    before every training forward; the default mode marks nothing; compile: false compiles nothing."""
    calls, marks = [], []

    def fake_compile(model, mode=None, **k):
        calls.append(mode)
        return lambda *a, **kw: model(*a, **kw)

    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    log = read_log(train(small_cfg(tmp_path / "r", steps=4, log_every=2, compile="reduce-overhead"),
                         items=fake_items(), null_text=NULL))
    assert calls == ["reduce-overhead"] and len(marks) == 4 and all(r["compiled"] for r in log)
    train(small_cfg(tmp_path / "d", steps=4, log_every=2, compile="default"), items=fake_items(), null_text=NULL)
    train(small_cfg(tmp_path / "n", steps=4, log_every=2, compile=False), items=fake_items(), null_text=NULL)
    assert calls == ["reduce-overhead", "default"] and len(marks) == 4


def test_checkpoint_from_gathered_weights_is_the_same_checkpoint(tmp_path):
    """FSDP saves the state dict gathered by accelerator.get_state_dict (keys of the V4SModel): the files are those
    of saving the model itself; NaN in the gathered weights is refused like NaN in the model."""
    from v4s_lite.checkpoints import save_checkpoint
    from v4s_lite.model import build_model

    cfg = small_cfg(tmp_path)
    model = build_model(cfg)
    plain = save_checkpoint(tmp_path / "plain", 1, model, cfg=cfg)
    gathered = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():  # the model's own tensors are not what gets saved
            p.zero_()
    from_weights = save_checkpoint(tmp_path / "gathered", 1, model, cfg=cfg, weights=gathered)
    a, b = transformer_state(plain), transformer_state(from_weights)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(v.abs().sum() > 0 for v in b.values())
    assert "state_dict" not in vars(model.transformer)  # the override is gone
    gathered[next(iter(gathered))].view(-1)[0] = float("nan")
    with pytest.raises(TrainingDiverged, match="NaN"):
        save_checkpoint(tmp_path / "nan", 1, model, cfg=cfg, weights=gathered)


@pytest.mark.parametrize("setting, message", [
    (dict(parallel="zero3"), "choose 'ddp'"),
    (dict(parallel="fsdp", device="cpu"), "GPUs only"),
    (dict(parallel="fsdp", device="cuda", lora_rank=8), "LoRA replicas"),
    (dict(parallel="fsdp", device="cuda", ema_decay=0.9), "ema_decay=0"),
])
def test_bad_parallel_settings_are_errors(tmp_path, setting, message):
    with pytest.raises(V4SError, match=message):
        small_cfg(tmp_path, **setting)


def test_fsdp_refuses_a_cpu_run_instead_of_running_ddp(tmp_path):
    """device=auto on a machine without a GPU: train() says FSDP needs GPUs before any work."""
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(V4SError, match="parallel=fsdp needs GPUs"):
        train(small_cfg(tmp_path, parallel="fsdp", device="auto"), items=fake_items(), null_text=NULL)

"""The real `v4s train` loop, today's way against the GPU way, in one run (issue 13).

    python benchmarks/train_loop.py --data data/lite/train --seconds 25      # on the GPU machine, real latents
    python benchmarks/train_loop.py --random 256 --steps 40 --device cpu --batch 4   # a CPU smoke run, random latents
    python benchmarks/train_loop.py --random 2048 --profile 60               # where the GPU way's step goes
    python benchmarks/train_loop.py --random 2048 --seconds 20 --compile-modes default reduce-overhead  # + CUDA graphs

Both arms call `train.train` with configs/lite.yaml (the 2.3M-parameter lite model, batch 64, bf16 on a GPU):
  baseline: batches built on the host (StepBatches in the loop), eager model (the loop that trained the shipped
            model in results/lite_2026-12-01b, minus its per-step host reads, which the loop no longer has)
  gpu way:  device_batches (latents resident on the GPU, each batch drawn there) + torch.compile
Prints seconds per step over the second half of each run (after compilation and warm-up), the ratio, and the
model FLOP rate (3 x forward FLOPs of `budget.transformer_flops` per sample). On a GPU it also counts the host
syncs of the GPU way's loop (torch.cuda.set_sync_debug_mode: each synchronizing call warns once), per step: the
loop reads the loss only every log_every steps, so anything near 1 per step is a stall left to remove.
2026-12-03 (results/gpu_2026-12-03c, before the RoPE positions and the timestep mask stopped copying from the
host with a sync each step): baseline 0.149 s, GPU way 0.0445 s per step, 3.35x, 65.7 TFLOP/s.
2026-12-03 (results/gpu_2026-12-03d call 1, with the positions pinned and copied inside the compiled model):
torch.compile failed (pin_memory cannot be traced), the GPU way ran eagerly: 0.0669 s, 2.81x. The positions now
live on the GPU with the latents (flow.DeviceBatches) and the model builds each batch's sequence there.
2026-12-03 (results/gpu_2026-12-03f call 1): baseline 0.1355 s; GPU way 0.0340 s (3.98x, 85.9 TFLOP/s) with torch's
default mode, 0.0239 s (5.67x, 122.2 TFLOP/s) with reduce-overhead (CUDA graphs), now what `compile: auto` picks on
one GPU; the `v4s train` run that followed (real latents, validation on) held 0.0240 s per step.
"""
import argparse
import dataclasses
import json
import tempfile
import time
import warnings

import torch

from v4s_lite.budget import transformer_flops
from v4s_lite.codec import build_codecs
from v4s_lite.config import get_clip_config, load_config
from v4s_lite.model import transformer_config
from v4s_lite.latents import encode_clips
from v4s_lite.train import read_log, seconds_per_step, train


def random_items(n, clip_cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    h, w = clip_cfg.height // 4, clip_cfg.width // 4
    idx = torch.tensor([0] + [4 * (1 + 2 * j) + i for j in range(clip_cfg.context_chunks) for i in range(4)])
    return [{"context_latents": torch.randn(12, clip_cfg.context_latents, h, w, generator=g),
             "target_latents": torch.randn(12, clip_cfg.target_latents, h, w, generator=g),
             "prompt_embeds": torch.randn(32, 64, generator=g), "context_frame_indices": idx,
             "context_positions": torch.tensor([0] + [1 + 2 * j for j in range(clip_cfg.context_chunks)]),
             "instruction": "x"} for _ in range(n)]


def arm(cfg, items, null, steps_or_seconds, count_syncs=False):
    syncs = None
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(record=True) as caught:
        cfg = dataclasses.replace(cfg, out_dir=tmp)
        if count_syncs:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
        t = time.perf_counter()
        try:
            train(cfg, items=items, null_text=null)
        finally:
            if count_syncs:
                torch.cuda.set_sync_debug_mode("default")
        wall = time.perf_counter() - t
        log = read_log(tmp)
        if count_syncs:
            syncs = sum("synchronizing" in str(w.message) for w in caught)
    compiled = log[-1].get("compiled")  # None: not asked to compile
    if compiled is False:  # train() fell back to eager: this arm's figure is not the compiled loop's
        print(f"WARNING: compilation failed, the arm ran eagerly ({cfg.steps} steps)")
    return seconds_per_step(log), wall, log[-1]["step"], syncs, compiled


def profile(cfg, items, null, n):
    """Where the GPU way's step goes: a warm-up run (compilation), then n steps under torch.profiler. Prints the
    device's kernel time per step against the wall time per step (device-busy share: near 1 means the GPU's own
    work is the limit, well below 1 that the host leaves it idle) and the kernels and host ops that take most."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    arm(dataclasses.replace(cfg, steps=20), items, null, 20)  # compile once (the cache serves the profiled run)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with torch_profile(activities=acts) as prof:
        step_s = arm(dataclasses.replace(cfg, steps=n), items, null, n)[0]  # the log's second half, profiled
    events = prof.key_averages()
    dev = sum(e.self_device_time_total for e in events if e.device_type.name == "CUDA") / 1e6 if len(acts) > 1 else 0
    print(f"{n} steps: {step_s * 1000:.1f} ms per step (second half, under the profiler); device kernels "
          f"{dev / n * 1000:.1f} ms per step (all steps): busy {dev / n / step_s:.2f}")
    key = "self_device_time_total" if len(acts) > 1 else "self_cpu_time_total"
    print(events.table(sort_by=key, row_limit=20, max_name_column_width=60))
    print(events.table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=60))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="training clips (their latent cache is read if configs/lite.yaml's one exists)")
    ap.add_argument("--random", type=int, default=0, help="use this many random latent items instead of --data")
    ap.add_argument("--steps", type=int, default=400, help="steps per arm")
    ap.add_argument("--seconds", type=float, default=0, help="instead of --steps: about this long per arm")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--compile-modes", nargs="+", default=["default"], metavar="MODE",
                    help="torch.compile modes of the GPU way, each its own arm against the same baseline (e.g. default "
                    "reduce-overhead: CUDA graphs); the first is the one --profile and the sync count use")
    ap.add_argument("--profile", type=int, default=0, help="only profile N steps of the GPU way (torch.profiler): "
                    "device-busy share of the wall time and the top kernels, nothing timed")
    a = ap.parse_args()
    if a.steps < 40 or 0 < a.profile < 40:
        ap.error("--steps and --profile need >= 40 (a log row every 10 steps; the timing reads the second half)")
    cfg = load_config("configs/lite.yaml", progress=False, device=a.device, batch_size=a.batch, ema_decay=0.999,
                      log_every=10, checkpoint_every=10 ** 9, **({"data_root": a.data} if a.data else {}))
    clip_cfg = get_clip_config(cfg.clip)
    if a.random:
        items, null = random_items(a.random, clip_cfg), torch.zeros(32, 64)
    else:
        codec, text = build_codecs(cfg)
        items, null = encode_clips(cfg, codec, text), text.encode([""])[0].float().cpu()
    if a.profile:
        return profile(dataclasses.replace(cfg, device_batches=True, compile=a.compile_modes[0]), items, null, a.profile)
    steps = a.steps
    if a.seconds:  # calibrate the step count on a short run of the baseline arm: its whole wall time per step
        # (start-up included), so the estimate can only err short (the second half of a 40-step run, with batches
        # built ahead, once made ~6,000 steps of a 0.19 s loop out of 30 seconds: the arm never ended)
        _, wall, n, _, _ = arm(dataclasses.replace(cfg, steps=40, device_batches=False, compile=False, batch_workers=0),
                         items, null, 0)
        steps = max(40, int(a.seconds / (wall / n)))
    base = dataclasses.replace(cfg, steps=steps, device_batches=False, compile=False, batch_workers=0)
    fast = dataclasses.replace(cfg, steps=steps * 4, device_batches=True, compile=a.compile_modes[0])
    s_base, w_base, _, _, _ = arm(base, items, null, steps)
    print(f"baseline arm: {s_base * 1000:.1f} ms/step", flush=True)  # each arm as it ends: a cut-off run keeps these
    s_fast, w_fast, _, _, compiled = arm(fast, items, null, steps)
    print(f"gpu way ({a.compile_modes[0]}): {s_fast * 1000:.1f} ms/step", flush=True)
    modes = {a.compile_modes[0]: s_fast}
    for mode in a.compile_modes[1:]:  # a mode that fails (e.g. CUDA graphs refusing an input) is reported, not fatal
        try:
            s_mode, _, _, _, held = arm(dataclasses.replace(fast, compile=mode), items, null, steps)
            modes[mode] = s_mode if held is not False else None
            print(f"gpu way ({mode}): {s_mode * 1000:.1f} ms/step" + (" (ran eagerly)" if held is False else ""),
                  flush=True)
        except Exception as e:  # noqa: BLE001 - any torch error: this mode's arm has no figure
            print(f"compile mode {mode}: failed ({type(e).__name__}: {str(e)[:300]})")
            modes[mode] = None
    syncs = None
    if torch.cuda.is_available():  # two short extra runs of the GPU way with every host sync counted (the warnings
        # slow them, so they are not timed); set-up, the final checkpoint and the log steps (every 10) sync on purpose
        # and cancel in the difference: (syncs of 80 steps - syncs of 40) / 40 is what a step costs. 0.2 = the log
        # steps' two reads; a stall in every step shows as >= 1
        counted = {n: arm(dataclasses.replace(fast, steps=n), items, null, n, count_syncs=True)[3] for n in (40, 80)}
        syncs = {"host_syncs": counted, "per_step": (counted[80] - counted[40]) / 40}
    tokens = (clip_cfg.context_latents + clip_cfg.target_latents) * (clip_cfg.height // 8) * (clip_cfg.width // 8)
    flops = 3 * transformer_flops(transformer_config(cfg.model), tokens, batch=a.batch, text_tokens=32)
    res = {"device": str(torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"), "batch": a.batch,
           "tokens_per_sample": tokens, "baseline_s_per_step": s_base, "gpu_way_s_per_step": s_fast,
           "speedup": s_base / s_fast, "baseline_wall_s": w_base, "gpu_way_wall_s": w_fast,
           "model_tflops_baseline": flops / s_base / 1e12, "model_tflops_gpu_way": flops / s_fast / 1e12,
           "steps": [steps, steps * 4], "gpu_way_host_syncs": syncs, "compile_modes_s_per_step": modes}
    print(json.dumps(res, indent=1))
    for mode, s in modes.items():
        if s is None:
            print(f"compile mode {mode}: no figure (failed or ran eagerly)")
            continue
        print(f"baseline {s_base * 1000:.1f} ms/step, gpu way ({mode}) {s * 1000:.1f} ms/step: {s_base / s:.2f}x; "
              f"{flops / s / 1e12:.1f} model TFLOP/s ({tokens} tokens x batch {a.batch})")


if __name__ == "__main__":
    main()

"""CPU cost of the lite model: parameters, tokens per sample, seconds per training step.

    python benchmarks/train_step_cpu.py [--clip lite] [--batch 1] [--steps 5] [--threads 1]

One training step = make_batch (noise, sigma, condition dropout) + forward + backward + AdamW, on latents of
the clip config's shape (LiteCodec). The "tiny" test model is timed in the same run as the baseline.
"""
import argparse
import time

import torch

from v4s_lite.codec import LiteCodec, LiteTextEncoder
from v4s_lite.config import get_clip_config
from v4s_lite.config import TrainConfig
from v4s_lite.model import V4SModel
from v4s_lite.flow import make_batch, predict
from v4s_lite.train import count_parameters


def fake_items(clip_cfg, n=4):
    codec, text = LiteCodec(), LiteTextEncoder()
    c, fc, h, w = codec.latent_shape(clip_cfg.context_frames, clip_cfg.height, clip_cfg.width)
    _, ft, _, _ = codec.latent_shape(clip_cfg.target_frames, clip_cfg.height, clip_cfg.width)
    idx = torch.tensor([0] + [4 * (2 * k + 1) + j for k in range(clip_cfg.context_chunks) for j in range(4)])
    return [{"context_latents": torch.randn(c, fc, h, w), "target_latents": torch.randn(c, ft, h, w),
             "prompt_embeds": text.encode(["find the green plant"])[0], "context_frame_indices": idx}
            for _ in range(n)], text.encode([""])[0], (fc + ft) * (h // 2) * (w // 2)


def time_steps(preset, items, null, batch, steps):
    torch.manual_seed(0)
    model = V4SModel.from_preset(preset)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    cfg = TrainConfig(batch_size=batch)
    times = []
    for s in range(steps + 1):  # the first step warms up allocators and is not counted
        t0 = time.perf_counter()
        b = make_batch(items, [i % len(items) for i in range(batch)], list(range(batch)), cfg, s, null)
        loss = (predict(model, b, "cpu") - b["velocity"]).square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t0)
    return count_parameters(model), sorted(times[1:])[len(times[1:]) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="lite")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    clip_cfg = get_clip_config(a.clip)
    items, null, tokens = fake_items(clip_cfg)
    print(f"clip {a.clip}: {clip_cfg.width}x{clip_cfg.height}, context {clip_cfg.context_frames} + target "
          f"{clip_cfg.target_frames} frames -> {clip_cfg.context_latents} + {clip_cfg.target_latents} latents, "
          f"{tokens} tokens per sample; batch {a.batch}, {a.threads} thread(s)")
    results = {p: time_steps(p, items, null, a.batch, a.steps) for p in ("tiny", "lite")}
    for p, (n, t) in results.items():
        print(f"{p:5s} {n / 1e6:7.3f} M parameters   {t:6.3f} s / step (median of {a.steps})   "
              f"{a.batch * tokens / t:8.0f} tokens / s")
    print(f"lite / tiny step time: {results['lite'][1] / results['tiny'][1]:.1f}x")


if __name__ == "__main__":
    main()

"""What a lite training run spends outside the model: encoding the clips, and building each noised batch.

    python benchmarks/train_input.py [--clips 8] [--workers 2] [--batch 64] [--steps 20]

Measured on the 2026-12-01 H200 run (results/lite_training_2026-12-01.md): encoding 1,920 LITE clips took
141 s per context view in every run and every resume (13.5 clips/s), against 0.15 s per batch-64 training
step. This script times, in one run on this machine, the three remedies against their baselines:
  encode_clips   serial (num_workers=0) vs decode+encode in N worker processes (num_workers=N)
  latent cache   encoding the clips vs loading the saved result (TrainConfig.latent_cache)
  batches        make_batch in the loop vs StepBatches through a DataLoader with N workers (batch_workers=N)
"""
import argparse
import tempfile
import time
from pathlib import Path

import torch

from v4s_lite.codec import LiteCodec, LiteTextEncoder
from v4s_lite.config import TrainConfig
from v4s_lite.data import make_dataset
from v4s_lite.latents import encode_clips
from v4s_lite.flow import StepBatches, batch_indices, make_batch


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    a = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        make_dataset(Path(tmp) / "clips", "grounding", a.clips, seed=0, clip_cfg="lite", progress=False)
        print(f"made {a.clips} LITE clips in {time.perf_counter() - t0:.1f} s")
        codec, text = LiteCodec(), LiteTextEncoder()
        base = dict(data_root=str(Path(tmp) / "clips"), clip="lite", context_views=1, progress=False,
                    batch_size=a.batch, weighting_scheme="logit_normal", steps=a.steps)

        def timed(fn):
            t = time.perf_counter()
            out = fn()
            return out, time.perf_counter() - t

        items, t_serial = timed(lambda: encode_clips(TrainConfig(**base), codec, text))
        _, t_workers = timed(lambda: encode_clips(TrainConfig(**base, num_workers=a.workers), codec, text))
        rows.append(("encode_clips, clips/s", a.clips / t_serial, a.clips / t_workers, f"{a.workers} workers"))
        cached = dict(base, latent_cache=str(Path(tmp) / "cache"), num_workers=a.workers)
        encode_clips(TrainConfig(**cached), codec, text)  # fills the cache
        _, t_load = timed(lambda: encode_clips(TrainConfig(**cached), codec, text))
        rows.append(("clips ready, clips/s", a.clips / t_workers, a.clips / t_load, "latent cache"))

        cfg = TrainConfig(**base)
        null = text.encode([""])[0]

        def loop():
            for s in range(a.steps):
                make_batch(items, batch_indices(len(items), a.batch, s, 0), list(range(s * a.batch, (s + 1) * a.batch)),
                           cfg, s, null)

        def loader():
            dl = torch.utils.data.DataLoader(StepBatches(items, TrainConfig(**base, batch_workers=a.workers), null, 0),
                                             batch_size=None, num_workers=a.workers, prefetch_factor=4)
            for _ in dl:
                pass

        loop()  # warm-up: imports, allocators
        _, t_loop = timed(loop)
        _, t_loader = timed(loader)
        rows.append((f"batch-{a.batch} batches/s", a.steps / t_loop, a.steps / t_loader,
                     f"{a.workers} workers (incl. start-up)"))
    print(f"\n{'what':28s} {'baseline':>10s} {'ours':>10s} {'ratio':>7s}  ours =")
    for what, b, o, how in rows:
        print(f"{what:28s} {b:10.2f} {o:10.2f} {o / b:6.2f}x  {how}")


if __name__ == "__main__":
    main()

"""Context reuse in the lite sampler: a context_only model sampled with the whole sequence at every denoising
step (masked, the reference) against the context's keys/values computed once per video (reuse_context).

    python benchmarks/context_reuse_cpu.py [--steps 20] [--guidance joint] [--threads 2]

Random weights of the "lite" preset at the LITE clip's shapes (9 context + 7 target latents of 16x26; 1,664
tokens, 936 of them context). Prints seconds per video, the ratio and the largest difference in the latents.
The same lever on Wan2.2-TI2V-5B at the paper's shape: benchmarks/bench_wan.py (results/bench_wan_h100.md).
"""
import argparse
import time

import torch

from v4s_lite.model import V4SModel
from v4s_lite.sample import generate


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--guidance", default="joint")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = V4SModel.from_preset("lite").eval()
    model.context_attention = "context_only"
    g = torch.Generator().manual_seed(0)
    ctx, first = torch.randn(1, 12, 9, 16, 26, generator=g), torch.randn(1, 12, 1, 16, 26, generator=g)
    text, null = torch.randn(1, 12, 64, generator=g), torch.zeros(1, 12, 64)
    pos = [0, 4, 9, 13, 17, 21, 25, 29, 31]

    def timed(reuse):
        best, out = float("inf"), None
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            with torch.no_grad():
                out = generate(model, ctx, first, text, null, pos, n_noisy=6, steps=a.steps, guidance=a.guidance,
                               seed=0, reuse_context=reuse)
            best = min(best, time.perf_counter() - t0)
        return best, out

    timed(True)  # warm-up
    count = {"fill": 0}
    orig = model._forward_reusing

    def counting(*args, **kw):
        before = model._reuse["key"]
        out = orig(*args, **kw)
        count["fill"] += model._reuse["key"] is not before
        return out
    model._forward_reusing = counting
    t_masked, masked = timed(False)
    t_reuse, reused = timed(True)
    print(f"{a.guidance} guidance, {a.steps} steps, {a.threads} threads, lite preset, 1,664 tokens (936 context)")
    print(f"masked (whole sequence every step): {t_masked:.2f} s per video")
    print(f"context reuse (fill once):          {t_reuse:.2f} s per video  ({count['fill'] // a.repeats} fill per video)")
    print(f"ratio reuse / masked: {t_reuse / t_masked:.2f}x; largest latent difference {(reused - masked).abs().max():.2e}")


if __name__ == "__main__":
    main()

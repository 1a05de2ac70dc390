"""Does a trained model use its conditions? `flow.condition_gaps` for checkpoints on clip folders.

    python tools/condition_gaps.py data/v4s-lite runs/lite/step_000750 --data data/lite/heldout [--max-clips 8] [--by-frame]
        [--by-sigma [0.3 0.7 0.95 1.0]] [--sigmas 0.3 0.5 0.7 0.9]

For each checkpoint and clip folder: the flow-matching loss with the true instruction and context, and how
much worse it gets (relative gap) with another clip's instruction, the null instruction, another room's
context or a noise context. Gaps near 0: the condition is ignored. Seconds to minutes on a CPU.
"""
import argparse

import torch

from v4s_lite.config import TrainConfig
from v4s_lite.flow import CONDITION_PROBES, GAP_SIGMAS, condition_gaps
from v4s_lite.latents import encode_clips
from v4s_lite.sample import V4SPipeline
from v4s_lite.utils import V4SError


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--data", nargs="+", required=True, help="clip folders written by v4s make-data")
    p.add_argument("--clip", default="lite")
    p.add_argument("--max-clips", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--by-frame", action="store_true", help="also each gap per noisy latent frame of the walk")
    p.add_argument("--by-sigma", type=float, nargs="*", default=None,
                   help="also each gap at each of these noise levels alone (none given: those of --sigmas), as 'mean / "
                   "at the destination' (the walk's last latent frame): where in denoising the condition matters. "
                   "1.0 is pure noise, where sampling decides the walk's layout")
    p.add_argument("--sigmas", type=float, nargs="+", default=list(GAP_SIGMAS),
                   help=f"the noise levels the main rows average (default {' '.join(map(str, GAP_SIGMAS))}, the "
                   "levels every recorded figure and `v4s train`'s validation gaps use; other levels are named in "
                   "the row, so that their mean is not read as the usual one)")
    a = p.parse_args(argv)
    by_sigma = a.sigmas if a.by_sigma == [] else a.by_sigma
    for name, levels in (("--sigmas", a.sigmas), ("--by-sigma", by_sigma or [])):
        if not all(0 < s <= 1 for s in levels):
            p.error(f"{name} must lie in (0, 1]; got {levels}")
    levels = "" if tuple(a.sigmas) == tuple(GAP_SIGMAS) else ", noise levels " + " ".join(map(str, a.sigmas))
    torch.set_num_threads(1)
    cols = ["true"] + [c + " gap" for c in CONDITION_PROBES[1:]]
    print("| checkpoint | data | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for ck in a.checkpoints:
        pipe = V4SPipeline.from_pretrained(ck, device=a.device, compile=False)
        model, codec, text = pipe.model, pipe.codec, pipe.text_encoder
        null = text.encode([""])[0]
        # the targets as this model was trained on them: a model trained without box frames (the box ablation) is
        # asked for the plain final view, not for red box frames it never learned to draw (its run config, else
        # what `v4s export` recorded); the context chunks drawn as its run drew them
        data = dict(box_frames=pipe.marks_target, sampling=pipe.config.sampling if pipe.config else "noncontiguous")
        for root in a.data:
            items = encode_clips(TrainConfig(data_root=root, clip=a.clip, progress=False, max_clips=a.max_clips,
                                             **data), codec, text)
            r = condition_gaps(model, items, null, sigmas=tuple(a.sigmas), seed=a.seed, device=a.device)
            box = "" if pipe.marks_target else ", no box frames"
            print(f"| {ck} | {root} ({len(items)} clips{box}{levels}) | " + " | ".join(
                f"{r[c]:.3f}" if c == "true" else f"{100 * r[c]:+.1f}%" for c in cols) + " |")
            if a.by_frame:  # the gap of each noisy latent frame of the walk: the last ones are the destination
                for c in CONDITION_PROBES[1:]:
                    print(f"|   by frame, {c} | " + " ".join(f"{100 * x:+.1f}%" for x in r[c + " gap by frame"]) + " |")
            if by_sigma:  # the same probes at one noise level at a time (the mean above averages several)
                for s in by_sigma:
                    rs = condition_gaps(model, items, null, sigmas=(s,), seed=a.seed, device=a.device)
                    print(f"|   sigma {s} | {rs['true']:.3f} | " + " | ".join(
                        f"{100 * rs[c + ' gap']:+.1f}% / {100 * rs[c + ' gap by frame'][-1]:+.1f}%"
                        for c in CONDITION_PROBES[1:]) + " |")


if __name__ == "__main__":
    try:
        main()
    except V4SError as e:  # bad input (one clip, a folder that is not a run): the message, not a traceback
        raise SystemExit(f"condition_gaps.py: {e}")

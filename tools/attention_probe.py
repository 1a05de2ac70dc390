"""Does a trained model look at the context views that show the target? Notebook 06's measurement, over many rooms
and several models, paired room by room.

    python tools/attention_probe.py data/v4s-lite models/mixed_lite --data data/lite_end/val_end/id [--max-clips 32]
        [--steps 4] [--fresh]

For each room and model: while the model generates the walk (joint CFG, `--steps` denoising steps), the attention
of its last latent frame (the destination, with its box frames) over the context latent frames, the conditional
pass (`sample.where_it_looks`). A context chunk *shows* the target when one of its scan frames has at least half of
the target in view (the clip's `context.visible`); `attention.attention_share` gives the share of the context
attention on those chunks and chance (their share of the chunks: an even spread). A model that retrieves the
target's views puts clearly more than chance there. Rooms where every chunk or none shows the target say nothing
and are skipped. On walks that end at a scan view (`make-data --end scan`: meta.json's `end_scan_frame`) also the
share on the chunk nearest that view on the scan's ring, against 1 / (context latent frames). Printed: per model the mean of (share - chance) with its bootstrap interval, and each model minus
the first, paired (`statistics.paired_difference`, the same rooms and noise). `--fresh`: a randomly initialised
model of the first checkpoint's architecture as a floor. Seconds per room and model on a CPU.
"""
import argparse

import numpy as np
import torch
from diffusers import WanTransformer3DModel

from v4s_lite.attention import attention_share
from v4s_lite.config import TrainConfig
from v4s_lite.data import clip_folders, load_clip
from v4s_lite.latents import encode_clips
from v4s_lite.model import V4SModel
from v4s_lite.sample import SamplingSettings, V4SPipeline, context_chunk_frames, where_it_looks
from v4s_lite.statistics import bootstrap_ci, format_difference, paired_difference
from v4s_lite.utils import V4SError

SHOWS = 0.5  # a chunk shows the target when one of its frames has this share of the target in view (notebook 06)
KEY = "share - chance"
END_KEY = "end view - chance"  # the chunk nearest the walk's end view, against 1 / (context frames)


def nearest_chunk(chunks, frame: int, ring: int) -> int:
    """The context latent frame whose scan frames come nearest `frame` on the scan's ring of `ring` frames (the scan
    walks once around the room and its last frame stands where its first does: frame `ring` is frame 0)."""
    def gap(f):
        d = abs(int(f) - frame) % ring
        return min(d, ring - d)
    return int(np.argmin([min(gap(f) for f in c) for c in chunks]))


def probe(pipe, model, root, a) -> dict:
    """{room: {"share - chance", "share", "chance", "context share"[, "end view - chance"]}} for the rooms with
    something to tell apart."""
    data = dict(box_frames=pipe.marks_target, sampling=pipe.config.sampling if pipe.config else "noncontiguous")
    items = encode_clips(TrainConfig(data_root=root, clip=a.clip, progress=False, max_clips=a.max_clips,
                                     seed=a.seed, **data), pipe.codec, pipe.text_encoder)
    null = pipe.text_encoder.encode([""])[0]
    out = {}
    for item, folder in zip(items, clip_folders(root)):
        rec = load_clip(folder)
        if "context_visible" not in rec.arrays:
            raise V4SError(f"{folder}: its meta.json stores no context visibility (a real scan?): nothing to probe")
        visible = rec.context_visible[:, rec.target_id - 1]
        chunks = context_chunk_frames(item["context_frame_indices"])
        showing = np.array([visible[f].max() >= SHOWS for f in chunks])
        shares, context = where_it_looks(model, item, null, steps=a.steps, device=a.device, guidance="joint",
                                         scale=a.scale, seed=a.seed)
        share, chance = attention_share(shares, showing)
        if share == share:  # not NaN
            out[folder.name] = {KEY: share - chance, "share": share, "chance": chance, "context share": context}
            end = rec.meta.get("end_scan_frame")  # a walk that ends at a scan view (make-data --end scan)
            if end is not None:
                k = nearest_chunk(chunks, end, rec.clip_config.scan_frames - 1)
                out[folder.name][END_KEY] = float(shares[k]) - 1 / len(shares)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", help="run checkpoints or exports; the first is the reference of the pairs")
    p.add_argument("--data", required=True, help="a folder of clips written by v4s make-data")
    p.add_argument("--clip", default="lite")
    p.add_argument("--max-clips", type=int, default=0)
    p.add_argument("--steps", type=int, default=4, help="denoising steps the attention is averaged over")
    p.add_argument("--scale", type=float, default=SamplingSettings.scale, help="the joint CFG scale of the generation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--fresh", action="store_true", help="also a randomly initialised model of the first's architecture")
    a = p.parse_args(argv)
    if a.steps < 1:
        p.error(f"--steps {a.steps}: at least 1")
    torch.set_num_threads(1)
    results = {}
    for i, ck in enumerate(a.checkpoints):
        pipe = V4SPipeline.from_pretrained(ck, device=a.device, compile=False)
        name = ck if ck not in results else f"{ck} ({i + 1})"  # a checkpoint named twice keeps both rows
        results[name] = probe(pipe, pipe.model, a.data, a)
        if i == 0 and a.fresh:
            torch.manual_seed(a.seed)
            m = pipe.model  # the same transformer and RoPE settings, new random weights
            fresh = V4SModel(WanTransformer3DModel.from_config(m.config), rope_gap=m.rope_gap,
                             context_attention=m.context_attention, rope_target_start=m.rope_target_start)
            fresh = fresh.to(a.device).eval()
            results["fresh (random weights)"] = probe(pipe, fresh, a.data, a)

    def interval(r, key, rooms=False):
        d = np.array([x[key] for x in r.values() if key in x])
        if not len(d):
            return "-"
        lo, hi = bootstrap_ci(d)
        return f"{d.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]" + (f" ({len(d)})" if rooms else "")

    print("| model | rooms | attention on target-showing chunks | chance | share - chance [95%] | context's share of all "
          "| the end view's chunk - chance [95%] (rooms) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        if not r:
            print(f"| {name} | 0 | - | - | - | - | - |")
            continue
        mean = lambda k: np.mean([x[k] for x in r.values()])  # noqa: E731
        print(f"| {name} | {len(r)} | {mean('share'):.3f} | {mean('chance'):.3f} | {interval(r, KEY)} | "
              f"{mean('context share'):.3f} | {interval(r, END_KEY, rooms=True)} |")
    first = next(iter(results))
    for name, r in list(results.items())[1:]:
        for key in (KEY, END_KEY):
            d = paired_difference(results[first], r, key)
            if d["n"]:
                print(f"{name} minus {first}, {key}, paired on {d['n']} rooms: " + format_difference(
                    d, ", higher in {wins} rooms, lower in {losses} (sign test p = {p_sign:.3f})"))


if __name__ == "__main__":
    try:
        main()
    except V4SError as e:
        raise SystemExit(f"attention_probe.py: {e}")

"""Non-contiguous vs contiguous context at the shipped size, paired on the 200 test rooms (README.md beside this file).

The tables print IF@0.2, SD and PSNR; this adds the walk's checks and what IF asks of the final view (both arms draw
box frames, so both are judged marked, as the tables judged them); then splits the difference into the input and the
training with the row of the non-contiguous model shown contiguous context (a second results file, made on a CPU),
and by whether the contiguous context shows the target at all (the context each row was shown, drawn again here as
the tables drew it: `ClipDataset(seed=0)`).
    python results/gpu_2026-12-07/contig_pairs.py results/gpu_2026-12-07/lease/lite_tables_test.json.xz \
        [results/gpu_2026-12-07/inference_only_cpu.json.xz DATA/test/id results/gpu_2026-12-07/context_shows_target.json]
(the last file written: per room, whether each arm's context shows the target; notebook 09 reads it)
"""
import json
import lzma
import sys

from v4s_lite.data import ClipDataset
from v4s_lite.evaluate import JUDGE
from v4s_lite.statistics import paired_difference
from v4s_lite.tables import CONTIGUOUS_AT_INFERENCE


def load(path):
    return json.loads((lzma.open if path.endswith(".xz") else open)(path, "rt").read())["conditions"]


rows = load(sys.argv[1])
if len(sys.argv) > 2 and sys.argv[2]:  # "" skips it
    rows.update(load(sys.argv[2]))
rows = {name: r["per_clip"] for name, r in rows.items()}
for per_clip in rows.values():
    for m in per_clip.values():
        m["prominent"] = float(m["target_share"] >= JUDGE.prominent)  # what IF asks of the final view
        m["box_on_target"] = float(m["box_IoU"] >= JUDGE.box_iou)  # and of its red box (the tables' columns)
        m["SD<0.2"] = float(m["SD"] < 0.2)
METRICS = [("IF(SD<0.2)", "IF@0.2"), ("SD", "SD"), ("SD < 0.2", "SD<0.2"), ("walk (all six checks)", "walk"),
           ("no teleport", "no_teleport"), ("no backtrack", "no_backtrack"), ("stops", "stops"),
           ("fits the room", "fits_room"), ("target prominent in the final view", "prominent"),
           ("box on the target", "box_on_target"), ("PSNR against the room (dB)", "PSNR"), ("SSIM", "SSIM")]


def table(title, a, b, metrics=METRICS):
    """b minus a, paired on the rooms both scored."""
    rooms = sorted(set(a) & set(b))
    print(f"\n{title} ({len(rooms)} rooms)\n")
    print("| metric | b | a | b - a | 95% interval | rooms higher / lower | sign p |")
    print("|---|---|---|---|---|---|---|")
    for name, key in metrics:
        d = paired_difference(a, b, key)
        mean = lambda r: sum(r[k][key] for k in rooms) / len(rooms)  # noqa: E731
        lo, hi = d["ci95"]
        print(f"| {name} | {mean(b):.3f} | {mean(a):.3f} | {d['mean']:+.3f} | [{lo:+.3f}, {hi:+.3f}] | "
              f"{d['wins']} / {d['losses']} | {d['p_sign']:.2g} |")


noncontig, contig = rows["full, same budget"], rows["contiguous context"]
table("b = non-contiguous arm, a = contiguous arm (each shown context the way it trained)", contig, noncontig)
if CONTIGUOUS_AT_INFERENCE in rows:
    shown = rows[CONTIGUOUS_AT_INFERENCE]  # the non-contiguous model shown contiguous context
    table("the whole ablation on the rooms this row reached (the sum of the two below)",
          {r: contig[r] for r in shown}, {r: noncontig[r] for r in shown})
    table("the input alone: b = non-contiguous model shown non-contiguous context, a = the same model shown "
          "contiguous context", shown, noncontig)
    table("the training alone: b = non-contiguous model, a = contiguous model, both shown the same contiguous "
          "context", contig, shown)
if len(sys.argv) > 3:  # does the context each arm was shown hold a view of the target?
    data = sys.argv[3]
    seen = {}
    for mode in ("noncontiguous", "contiguous"):
        ds = ClipDataset(data, "lite", sampling=mode, seed=0)
        for i, folder in enumerate(ds.folders):
            item = ds[i]
            meta, picked = item["meta"], item["context_frame_indices"].tolist()
            scan = meta["context"]["frame_indices"]
            vis = [meta["context"]["visible"][scan.index(f)][meta["target_id"] - 1] for f in picked]
            seen.setdefault(folder.name, {})[mode] = max(vis) > 0
    if len(sys.argv) > 4:
        with open(sys.argv[4], "w") as f:
            json.dump(dict(sorted(seen.items())), f, indent=0)
    print("\n| context shows the target (any pixel of it in a context frame) | rooms |\n|---|---|")
    for mode in ("noncontiguous", "contiguous"):
        print(f"| {mode} | {sum(s[mode] for s in seen.values())} of {len(seen)} |")
    for flag, label in ((True, "shows"), (False, "does not show")):
        keep = {r for r, s in seen.items() if s["contiguous"] == flag}
        sub = lambda r: {k: v for k, v in r.items() if k in keep}  # noqa: E731
        table(f"rooms where the contiguous context {label} the target: b = non-contiguous arm, a = contiguous arm",
              sub(contig), sub(noncontig), METRICS[:3] + METRICS[8:9])

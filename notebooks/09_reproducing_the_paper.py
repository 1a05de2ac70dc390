# %% [markdown]
# # 09 · Reproducing the paper at lite scale
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/v4s-lite/v4s-lite/blob/main/notebooks/09_reproducing_the_paper.ipynb)
#
# The paper backs each of its three ideas with a table: joint guidance, auxiliary box frames and non-contiguous
# context. Here we lay out the same tables for the course's lite model (`data/v4s-lite/`), scored by notebook 08's
# render-and-compare evaluation on held-out rooms, with 95% bootstrap intervals. You will learn to read an
# ablation honestly: which gaps are real, which are noise, and what a model that is not trained enough looks like.
#
# **What you need:** a CPU, under a minute: the numbers come from `results/lite_tables.json`, which
# `v4s eval --runs` wrote on a GPU (the command is below). **Comes after:** 08 (evaluation).

# %%
# Install: a no-op in a checkout (the package is already installed); on Colab it fetches the course.
import importlib.util, subprocess, sys
if importlib.util.find_spec("v4s_lite") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/v4s-lite/v4s-lite"], check=True)

# %% tags=["parameters"]
quick = True      # the tables are read from the results file either way
device = "auto"
seed = 0
results_file = "../results/lite_tables.json"
rebuild = False   # True on a GPU: regenerate the results file first (about 4 minutes on an H100 + 16 cores)

# %%
import json
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from v4s_lite.statistics import markdown_table
from v4s_lite.exercises import check_exercise

REBUILD = ("# three 10-minute device calls on one GPU (results/lite_2026-12-01b/README.md):\n"
           "bash tools/gpu_lite.sh data OUT 120 && bash tools/gpu_lite.sh train OUT 335 lite lite_contiguous lite_nobox lite_ctxonly\n"
           "bash tools/gpu_lite.sh train OUT 550 lite lite_contiguous lite_nobox lite_ctxonly\n"
           "bash tools/gpu_lite.sh train OUT 135 lite && bash tools/gpu_lite.sh eval OUT 235   # v4s eval --runs runs --data data/lite ...")
if rebuild:
    subprocess.run([sys.executable, "-m", "v4s_lite.cli", "eval", "--runs", "../runs", "--data", "../data/lite",
                    "--out", results_file, "--device", device], check=True)
res = json.loads(Path(results_file).read_text())
C = {name: c["summary"] for name, c in res["conditions"].items()}
print("conditions:", len(C), "| clips per in-distribution condition:", C["full (joint CFG)"]["n"])
print("checkpoints:", sorted(set(res["checkpoints"].values())))
print("rebuild from scratch on a GPU:\n" + REBUILD)

# %% [markdown]
# ## The grounding table
# The paper's baselines see one frame; ours is the same model given no context (only the clean first target
# frame). SD is the grounded point's distance to the target over the room's diagonal (lower is better); IF@0.2
# counts a success only when the target is grounded *and* SD < 0.2. The paper's numbers, for comparison:
# ground truth SD 0.074 / IF@0.2 1.0, Wan2.2-5B 0.534 / 0.224, Video4Spatial 0.110 / 0.649.

# %%
rows = {"ground truth": C["ground truth"], "no context (first frame only)": C["no context (first frame only)"],
        "full (joint CFG)": C["full (joint CFG)"], "OOD: ground truth": C["ground truth OOD"],
        "OOD: full model": C["OOD scenes"]}
print(markdown_table(rows))


# %%
def cell(s, k):
    m, (lo, hi) = s[k]["mean"], s[k]["ci95"]
    return f"{m:.2f} [{lo:.2f}, {hi:.2f}]"


print(f"{'condition':32s} {'SD [95% CI]':>20s} {'IF@0.2 [95% CI]':>20s}")
for name in rows:
    print(f"{name:32s} {cell(rows[name], 'SD'):>20s} {cell(rows[name], 'IF@0.2'):>20s}")

# %% [markdown]
# ## Ablations, and whether they move the way the paper's do
# Each line names the paper's change, the direction the paper reports, and our numbers for the variant without
# and with it. "clear" means the 95% intervals do not overlap; anything else is not evidence either way with this
# many rooms. IF@0.2 and PSNR: higher is better; SD: lower is better.

# %%
# A variant trained separately is compared with the shipped run's checkpoint at the same step when the results
# file has one ("full, same budget"): a longer-trained model would win for the wrong reason.
SAME = "full, same budget" if "full, same budget" in C else "full (joint CFG)"
ABLATIONS = [  # (paper's claim, variant without it, variant with it, metrics, paper's numbers)
    ("joint CFG vs no guidance", "guidance none", "full (joint CFG)", ("IF@0.2", "SD"), "IF 0.04 -> 0.65"),
    ("joint CFG vs text-only CFG", "guidance text", "full (joint CFG)", ("IF@0.2", "SD"), "(joint > text)"),
    ("auxiliary box frames", "without box frames", SAME, ("IF@0.2", "SD"), "0.54 -> 0.65"),
    ("non-contiguous context", "contiguous context", SAME, ("IF@0.2", "SD"), "0.46 -> 0.65"),
    ("video context vs first frame", "no context (first frame only)", "full (joint CFG)", ("IF@0.2", "SD", "PSNR"),
     "0.22 -> 0.65"),
]


def compare(worse, better, k):
    w, b = C[worse][k], C[better][k]
    gain = (b["mean"] - w["mean"]) * (-1 if k == "SD" else 1)
    direction = "same direction" if gain > 0 else ("no change" if gain == 0 else "opposite")
    clear = "clear" if b["ci95"][0] > w["ci95"][1] or w["ci95"][0] > b["ci95"][1] else "overlap"
    return f"{k} {w['mean']:.2f} -> {b['mean']:.2f} ({direction}, {clear})"


for claim, worse, better, metrics, paper in ABLATIONS:
    print(f"{claim:30s} paper {paper:16s} ours " + "; ".join(compare(worse, better, k) for k in metrics))

# %% [markdown]
# ## Navigation
# The instruction is a list of camera commands; the generated walk is compared with the ground-truth frames
# (PSNR, SSIM) and its estimated camera path with the commanded one.

# %%
for name in ("navigation", "navigation, no context"):
    s = C[name]
    print(f"{name:24s} PSNR vs GT {s['GT_PSNR']['mean']:.2f} dB  SSIM {s['GT_SSIM']['mean']:.3f}  "
          f"pose error {s['pose_err_m']['mean']:.2f} m  (n={s['n']})")

# %% [markdown]
# ## Context length and repeated sampling
# The paper trains on 169 context frames and finds 337 at inference slightly better; our model trains on 8 chunks.
# Left: the same checkpoint given no context, the scan's first frame, then 2 to 16 chunks. Right: IF@0.2 when any
# of n tries succeeds (the paper's plot: about 0.65, 0.76, 0.85, 0.87, 0.91) and when one try is *chosen* without
# ground truth, by the most confident red box (ties: the lowest pose residual) — a rule the paper does not have.

# %%
lengths = [("none", "no context (first frame only)"), ("0", "context 0 chunks"), ("2", "context 2 chunks"),
           ("4", "context 4 chunks"), ("8 (trained)", "full (joint CFG)"), ("16", "context 16 chunks")]
tries = res["tries"]["full (joint CFG)"]
for label, name in lengths:
    print(f"context {label:12s} SD {C[name]['SD']['mean']:.3f}  IF@0.2 {C[name]['IF@0.2']['mean']:.3f}")
rules = {k: v for k, v in tries.items() if k not in ("n", "any", "per_try")}  # "selected": the most confident box
print("tries", tries["n"], "any", np.round(tries["any"], 3).tolist(),
      *[f"{k} {np.round(v, 3).tolist()}" for k, v in rules.items()])
fig, ax = plt.subplots(1, 2, figsize=(9, 3))
x = np.arange(len(lengths))
for k, marker in (("IF@0.2", "o-"), ("SD", "s-")):  # with the 95% intervals: is the peak at 2 chunks real?
    m = np.array([C[n][k]["mean"] for _, n in lengths])
    ci = np.array([C[n][k]["ci95"] for _, n in lengths]).T
    ax[0].errorbar(x, m, yerr=[m - ci[0], ci[1] - m], fmt=marker, capsize=3, label=k)
ax[0].set_xticks(x, [l for l, _ in lengths], fontsize=8)
ax[0].set_xlabel("context chunks at inference")
ax[0].legend()
ax[1].plot(tries["n"], tries["any"], "o-", label="any try succeeds")
for k, v in rules.items():
    ax[1].plot(tries["n"], v, "s-", label="chosen by box confidence" if k == "selected" else f"chosen by {k}")
ax[1].plot([1, 2, 3, 4, 5], [0.65, 0.76, 0.85, 0.87, 0.91], "k--", label="paper (any try)")
ax[1].set_xlabel("tries")
ax[1].set_ylabel("IF@0.2")
ax[1].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Choosing a try without ground truth
# "Any try succeeds" needs an oracle that knows the answer. A user gets one video, so a sampler needs a rule that
# picks one of its tries *without* the target. `v4s_lite.statistics.SELECTION_RULES` holds three: the most confident
# red box (the detector's reading), the lowest pose residual (how well all generated views fit the room), and the
# lowest final-view residual (only the box frames, where the answer is). The GPU results file kept only each
# room's first try, so the shipped checkpoint re-sampled the 24 in-distribution rooms five times on a CPU, keeping
# every try's metrics; any rule can be tried on them without sampling again (`statistics.repeated_sampling`).

# %%
from v4s_lite.statistics import SELECTION_RULES, repeated_sampling

cpu = json.loads(Path(results_file).with_name("lite_2026-12-01b").joinpath("tries_cpu.json").read_text())
per_try = cpu["tries"]["full (joint CFG)"]["per_try"]
curves = repeated_sampling(per_try)
print(f"{len(per_try)} rooms x {len(curves['n'])} tries, made by: {cpu['command']}")
print("the same today (19 minutes on 2 CPU cores): v4s eval --runs runs --data data/lite --only 'full (joint CFG)' "
      "--device cpu --workers 2 --out results/lite_2026-12-01b/tries_cpu.json")
for k in ("any", *SELECTION_RULES):
    print(f"{k:20s} IF@0.2 with 1..5 tries: {np.round(curves[k], 3).tolist()}")
fig, ax = plt.subplots(figsize=(5, 3))
for k in ("any", *SELECTION_RULES):
    ax.plot(curves["n"], curves[k], "o-" if k == "any" else "s--", label="any try succeeds" if k == "any" else f"chosen by {k}")
ax.set_xlabel("tries")
ax.set_ylabel("IF@0.2 (24 rooms)")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# The first tries agree with the GPU's on all 18 rooms both files share (same seeds; the CPU's float rounding
# differs, the outcomes do not), and the 6 rooms the GPU's deadline cut are mostly failures: over all 24 rooms
# the model grounds 0.42, not 0.50. The box detector's confidence is a poor judge: it measures how box-like the
# red is, not whether the box surrounds the named object in the right room, and that rule does *worse* than taking
# the first try. How well the views fit the room
# is a better one: the lowest pose residual lifts 0.42 to 0.58 with 3 tries, most of the way to the oracle's 0.62.
# With 24 rooms these gaps are a few rooms each: a lead, not a result. Try your own rule: any function of one try's
# metrics that does not read `SD`, `IF` or the pose errors, passed to `repeated_sampling(per_try, {"mine": rule})`.

# %% [markdown]
# ## Context-only attention: a speed choice with a possible quality cost
# Not in the paper. If context tokens attend only to context tokens, their keys and values do not depend on the
# noisy target, so sampling computes them once per video instead of at every denoising step
# (`V4SModel.reuse_context`, used by `generate` for such a model: a lite video in 0.53x the time on a CPU,
# `benchmarks/context_reuse_cpu.py`; Wan2.2-5B at the paper's shape, notebook 10). A model must be trained that way
# (`v4s train configs/lite.yaml --set context_attention=context_only`). Both variants were trained side by side
# with the same data and settings; here they are after 500 steps (`results/lite_2026-12-01/`, neither grounds yet)
# and after about 2,600 (the results file above; the checkpoints are printed):

# %%
early = json.loads(Path(results_file).with_name("lite_2026-12-01").joinpath("lite_tables_step500.json").read_text())
for label, r in (("step 500", early), ("results file", res)):
    S = {name: c["summary"] for name, c in r["conditions"].items()}
    for name in ("full, same budget", "context-only attention"):
        ck = r.get("checkpoints", {}).get(name, "")
        print(f"{label:12s} {name:24s} SD {cell(S[name], 'SD'):>18s}  IF@0.2 {cell(S[name], 'IF@0.2'):>18s}  "
              f"PSNR {S[name]['PSNR']['mean']:.2f} dB  {ck}")

# %% [markdown]
# The two stay within each other's intervals on every metric, at chance and once they ground half the targets:
# at this scale the speed choice costs nothing that 18 rooms can measure. (The context-only model had 236 more
# steps than the full one it is compared with: the tables were made before `v4s eval --runs` paired
# checkpoints by the nearest step; a small advantage, and it did not show.)

# %% [markdown]
# ## Why: does the model listen to its conditions?
# Sampling and scoring videos is slow. A faster question: does the model denoise the target *better* with the
# true instruction and context than with another clip's? `evaluate.condition_gaps` measures the flow-matching
# loss on encoded clips with each condition replaced (same noise, same sigma), as a relative gap. A model that
# grounds must lose accuracy when it is given another room or another target; gaps near 0 mean it ignores them.

# %%
from v4s_lite.checkpoints import load_model
from v4s_lite.config import TrainConfig
from v4s_lite.evaluate import CONDITION_PROBES, condition_gaps
from v4s_lite.train import encode_clips

lite_dir = Path("../data/v4s-lite")
if (lite_dir / "config.json").exists():
    model, codec, text_encoder, _ = load_model(lite_dir)
    items = encode_clips(TrainConfig(data_root=str(lite_dir / "clips"), clip="lite", progress=False), codec,
                         text_encoder)
    gaps = condition_gaps(model, items, text_encoder.encode([""])[0], seed=seed)
    print(f"loss with the true conditions: {gaps['true']:.3f} ({len(items)} held-out clips)")
    for probe in CONDITION_PROBES[1:]:
        print(f"  with {probe:22s} {100 * gaps[probe + ' gap']:+5.1f}%")
else:
    print("data/v4s-lite/ is missing: no model to probe (see data/v4s-lite/README.md)")

# %% [markdown]
# Compare with the checkpoints on the way (`tools/condition_gaps.py` on 8 held-out rooms, in
# `results/lite_2026-12-01b/README.md`): after 500-1,000 steps every gap was 0-3% and the models sampled at
# chance; by step 3,500 another instruction costs 7% and another room's context 2%, and the model grounds about half
# the targets. The gaps are a cheap early signal to watch during training: they grow before the tables move.
# That the context gap stays small says where this model is weakest: it has learnt *what* to look for better
# than *where* the room puts it.

# %% [markdown]
# ## Reading these results
# The lite model trained for 3,500 steps of 64 clips (about 17 minutes of one H200, most of it shared with the
# three ablation runs). It grounds about half of the held-out targets (IF@0.2 0.50 and SD 0.23 on the 18 rooms
# every condition covers; 0.42 and 0.25 on all 24) where ground truth scores 1.0 and 0.03: short of the targets
# this course set (0.8 and 0.1) and of the paper's 0.65 / 0.11, and the out-of-distribution rooms drop to 0.17.
# What does show, in the paper's direction:
# * guidance matters: no guidance grounds 0.22, joint guidance 0.50;
# * the context matters for consistency: the walk agrees with the room far better with the video context than
#   with the first frame alone (PSNR against the re-render 20.0 vs 17.9 dB, intervals apart), and navigation
#   lands closer to the commanded pose with it (1.10 vs 1.41 m);
# * several tries help: any of 5 tries succeeds for 0.71-0.72 of the rooms (the paper: 0.91), and a rule without
#   ground truth, the lowest pose residual, turns 3 tries into 0.58 where one try gives 0.42.
#
# What does not show yet: box frames and non-contiguous context are within noise of their ablations, and a
# longer context at inference does not help. With 18 rooms an ablation needs a gap of about 0.3 in IF@0.2 to be
# clear, so the cure is the paper's: many more steps (`configs/lite.yaml` plans 20,000) and more rooms, and
# more held-out rooms for tighter intervals. The four commands printed at the top rebuild every table, so a
# longer run drops straight into this notebook.

# %% [markdown]
# ## Exercise: IF@0.2 from the per-clip results
# The results file keeps each clip's metrics. IF@0.2 is the fraction of clips that are both grounded (`IF` = 1)
# and close (`SD` < 0.2). Write `if_at(per_clip, threshold)` and check it against the stored summary.

# %%
def if_at(per_clip, threshold=0.2):
    raise NotImplementedError  # your code here: mean over clips of IF == 1 and SD < threshold


# %% jupyter={"source_hidden": true}
def solution_if_at(per_clip, threshold=0.2):
    return float(np.mean([m["IF"] == 1 and m["SD"] < threshold for m in per_clip.values()]))


# %%
per_clip = res["conditions"]["full (joint CFG)"]["per_clip"]
check_exercise("IF@0.2 of the full model", if_at, solution_if_at,
               reference=C["full (joint CFG)"]["IF@0.2"]["mean"], args=(per_clip,))

# %% [markdown]
# ## What you learned / where it lives in v4s_lite
# * The paper's tables at lite scale: `v4s eval --runs`, `v4s_lite/tables.py` (conditions, repeated sampling),
#   scored by `v4s_lite.evaluate` (`score_clip`, `summarize` with bootstrap intervals, `markdown_table`).
# * The shipped model and how it was trained: `data/v4s-lite/README.md` (model card); training:
#   `tools/gpu_lite.sh` (GPU phases: data, train, eval), `v4s train configs/lite.yaml`.
# * An ablation is evidence only when its intervals separate; a model trained too briefly shows only the largest
#   effects (guidance, context for consistency).
#   Next: **10 · full Wan2.2**, the real model on a GPU.

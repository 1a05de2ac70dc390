# %% [markdown]
# # 09 · Reproducing the paper at lite scale
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/v4s-lite/v4s-lite/blob/main/notebooks/09_reproducing_the_paper.ipynb)
#
# The paper backs each of its ideas with an ablation: joint guidance, auxiliary box frames, non-contiguous context,
# video context itself. Here we run the same comparisons on the course's lite models, judged by notebook 08's judge
# on **test rooms**: rooms from seeds no model was trained on and no choice was made on (docs/DATA.md). You will
# learn to read an ablation honestly: compare conditions *room by room* (paired), and say plainly what does not show.
#
# **What you need:** a CPU, under a minute: the numbers come from results files that `v4s tables` wrote on a GPU
# (commands below). **Comes after:** 08 (the judge).

# %%
# Install: a no-op in a checkout (the package is already installed); on Colab it fetches the course.
import importlib.util, subprocess, sys
if importlib.util.find_spec("v4s_lite") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/v4s-lite/v4s-lite"], check=True)

# %% tags=["parameters"]
quick = True      # the tables are read from the results file either way
device = "auto"
seed = 0
results = "lite_2026-12-02/lite_tables_test.json"  # under results/ (found through the package from any directory)

# %%
import json

import matplotlib.pyplot as plt
import numpy as np

from v4s_lite.exercises import check_exercise
from v4s_lite.resources import results_file, results_json
from v4s_lite.statistics import markdown_table, paired_difference, paired_table
from v4s_lite.train import read_log

res = results_json(results)
C = {name: c["summary"] for name, c in res["conditions"].items()}
P = {name: c["per_clip"] for name, c in res["conditions"].items()}
print("made by:", res["command"])
print(f"{len(C)} conditions, {C['full (joint CFG)']['n']} test rooms each (the first rooms of data/lite/test/id that "
      f"every condition reached within the device call's deadline)")
print("runs:", sorted({c.split("/")[-2] + "/" + c.split("/")[-1] for c in res["checkpoints"].values()}))

# %% [markdown]
# ## The grounding table
# Laid out like the paper's. **Ground truth through the codec** is the ceiling: the true walk passed through the
# lite codec, what a perfect lite model could output at best. The models are this session's runs of the lite
# recipe (2.3M parameters, batch 64, about 2,600 steps on 2,720 training rooms, trained side by side on one H200:
# `results/lite_2026-12-02/README.md`).

# %%
order = ["ground truth through the codec", "full (joint CFG)", "guidance text", "guidance none",
         "first frame only (context dropped)", "full, same budget", "without box frames", "contiguous context"]
print(markdown_table({k: C[k] for k in order if k in C}))

# %% [markdown]
# The paper, for comparison: ground truth SD 0.074 / IF(SD<0.2) 1.0; Video4Spatial SD 0.110 / IF(SD<0.2) 0.649.
# Our ceiling passes 37 of 38 rooms. The lite models walk in about 70% of the rooms (they start right, move, fit
# the room) but end boxing the target in under a fifth: far below the paper's 0.65, and below this course's target
# of 0.8. (`v4s tables --rejudge` recomputed these verdicts after the judge's turn check was dropped on validation
# evidence: a camera may turn on the spot; `results/lite_2026-12-02/README.md` has both versions.)

# %% [markdown]
# **The stricter judge, on the whole test set.** Notebook 08's judge has since learned to fail a shuffled walk
# (its path against the true walk's, box frames that must hold one view) and grounds SD at the box's near depth.
# The 2.3M model shipped until 2026-12-06 (3,501 steps) was scored again under it on all 200 in-distribution test
# rooms and all 100 OOD rooms, grown over five device calls with `v4s tables --resume` and joined with `v4s tables
# --merge` (`results/gpu_2026-12-03d/README.md`; the ablation runs above were not kept, so only that model's rows
# exist there). The ceiling and the model's score barely move: the stricter checks cost the ground truth little,
# and the model's failures were failures already.

# %%
strict_res = results_json("gpu_2026-12-03d/lite_tables_test.json")
strict = strict_res["conditions"]
print(markdown_table({k: strict[k]["summary"] for k in ("ground truth through the codec", "full (joint CFG)",
                                                         "guidance text", "guidance none",
                                                         "first frame only (context dropped)", "OOD scenes")}))
print(paired_table({k: d for k, d in strict_res["paired"].items() if d["key"] in ("IF@0.2", "SD")}))

# %% [markdown]
# On these rooms **joint guidance vs none** shows (17 rooms won, 4 lost), at a cost of about 1 dB of PSNR. **Joint vs
# text-only guidance** does not, and neither does **video context vs noise**: the effect that the 38 rooms below
# show shrinks to +0.04 [-0.01, +0.08] on 200. The model grounds 10% of fresh rooms and 2% of OOD rooms: the
# course's targets (0.8 and 0.5) are far away.
#
# ## The shipped model on the same 200 test rooms
# The model shipped now (`data/v4s-lite`: 6.1M parameters, 27,452 steps on 5,760 rooms; chosen on validation rooms,
# its card says how) was scored on the same rooms, noise seed and judge, with one more row: the context cut from
# 8 chunks to 2 at inference (`results/gpu_2026-12-06d/README.md`, three device calls on one H100).


# %%
test_res = results_json("gpu_2026-12-06d/lite_tables_test.json")
test = test_res["conditions"]
print("checkpoint:", test_res["checkpoints"]["full (joint CFG)"])
print(markdown_table({k: test[k]["summary"] for k in ("ground truth through the codec", "full (joint CFG)",
                                                       "guidance text", "guidance none",
                                                       "first frame only (context dropped)", "context 2 chunks",
                                                       "OOD scenes")}))
print(paired_table({k: d for k, d in test_res["paired"].items() if d["key"] in ("IF@0.2", "SD")}))
# the two shipped models, room by room (both rows generated on a GPU from the same noise seed)
vs_old = {f"6.1M - 2.3M, {row}: {key}": paired_difference(strict[row]["per_clip"], test[row]["per_clip"], key)
          for row in ("full (joint CFG)", "first frame only (context dropped)") for key in ("IF@0.2", "SD")}
print(paired_table(vs_old))

# %%
# The numbers the text below reads aloud, checked against the files.
ctx = test_res["paired"]["video context vs noise context (first frame only): IF@0.2"]
ctx_sd = test_res["paired"]["video context vs noise context (first frame only): SD"]
jt = test_res["paired"]["joint vs text-only CFG (the paper's 'without context CFG'): IF@0.2"]
assert (round(ctx["mean"], 3), ctx["wins"], ctx["losses"]) == (0.09, 22, 4) and ctx["ci95"][0] > 0
assert round(ctx_sd["mean"], 3) == -0.115 and ctx_sd["ci95"][1] < 0
assert (round(jt["mean"], 3), jt["wins"], jt["losses"]) == (-0.025, 11, 16) and jt["ci95"][0] < 0 < jt["ci95"][1]
assert [round(test[k]["summary"]["IF@0.2"]["mean"], 3) for k in ("full (joint CFG)", "OOD scenes")] == [0.14, 0.06]
d_full = vs_old["6.1M - 2.3M, full (joint CFG): IF@0.2"]
assert round(d_full["mean"], 3) == 0.035 and d_full["ci95"][0] < 0 < d_full["ci95"][1]
assert vs_old["6.1M - 2.3M, full (joint CFG): SD"]["ci95"][1] < 0

# %% [markdown]
# **The room's video now matters.** Replacing it with noise (the "first frame only" row) costs the shipped model 0.09
# of IF(SD<0.2) (22 rooms lost, 4 won) and 0.115 of SD, both intervals clear of 0: the first of the paper's ablations
# that separates on this course's test rooms. For the 2.3M model the same ablation moved +0.035 [-0.010, +0.080].
# Against that model, room by room, the new one ends nearer the target (SD lower, shown) and grounds in 0.14 of the
# rooms against 0.105 (+0.035, not shown on its own: these two files were generated on different GPU machines,
# which move per-room verdicts a little); generated on one machine (this course's CPU, the same seeds and rooms,
# `results/gpu_2026-12-06c/README.md`) the lead is +0.070 [+0.015, +0.125], 24 rooms won and 10 lost, as validation
# had said (+0.095) before any test room was used. Without the room's video it is no better than the old one:
# what it gained, it gained from the room.
#
# What still does not show: **joint vs text-only guidance** (-0.025 [-0.075, +0.025], 11 rooms to 16; the paper's
# largest effect), **joint guidance vs none** in IF (+0.030; in SD it shows, notebook 06), and the **context length**
# at inference (8 chunks vs 2: +0.020 [-0.040, +0.080]). OOD rooms: 0.06 (the target: 0.5). So the course can show
# that a lite model uses the room; it cannot show that guiding with the room adds to guiding with the instruction.

# %% [markdown]
# One more thing a careful reader should know: the same room generated on two GPU machines gives two slightly
# different videos (the noise seed is the same; the GPU's arithmetic is not bit-for-bit repeatable), and for 1-3 of
# 23 rooms the verdict flipped. Ground truth scored identically on both. A per-room verdict near the threshold is
# partly luck, which is one more reason to compare conditions over hundreds of rooms, paired.

# %% [markdown]
# ## Where the videos fail
# A headline of 0.14 does not say *why* the other 86% failed. The judge's verdict is a chain of checks (notebook 08),
# so we can count, for each row, the share of its videos that pass each check (`tables.check_shares`): first the
# walk's six, then the destination's three. The last row is the **floor**: for every test room, a perfect walk to
# *another* object of the same room (notebook 08's "walk to another object" video, one object drawn per room),
# scored by the same judge. It is what a model scores for walking somewhere plausible without finding the target.
# Only its last four columns are a floor: the walk to another object starts elsewhere in the room, so its walk
# columns (59% fail the start) say nothing about the model's.

# %%
from v4s_lite.tables import check_shares, check_table

chance_res = results_json("cpu_2026-12-03e/chance_test.json")
old_shares = check_shares(strict_res)  # the 2.3M model's rows, for contrast
shares = {**check_shares(test_res), **{f"2.3M model: {k}": old_shares[k] for k in ("full (joint CFG)",
                                                                                  "first frame only (context dropped)")},
          **check_shares(chance_res)}
print(check_table(shares))

# %% [markdown]
# Read it column by column:
# * **The walk.** The model starts at the given view and moves in every room. What fails is the path: it goes
#   back and forth (43% fail "no backtrack"), jumps, or shows frames that fit no place in the room. Half its
#   walks pass all six checks, against 94% for the codec's ground truth; the 2.3M model passed 47%.
# * **The destination.** With joint guidance the target ends up in the final view in 46% of the videos: far above
#   the floor (a walk to another object: 15%), above no guidance (33%), and its final view grounds a point near the
#   target (SD < 0.2) in 45% against the floor's 7%: the *instruction* steers the walk.
#   With the room's video replaced by noise (first frame only) it falls to 21%: **the room's video helps the
#   model find its target**. For the 2.3M model the same two numbers were 31% and 28%: it barely used the room.
#   This is the paired row "video context vs noise context" above, and the loss probe below says the same.
# * The two failures multiply: 0.50 (walk) x 0.31 (box on the target) is about the 0.14 headline.
#
# Both halves need work. The model walks well half the time, follows the instruction and now reads the room, but
# it boxes the target in under a third of its videos and walks cleanly in half: the paper's 0.65 needs both far
# higher. The paper gets there from a 5B video model pretrained at scale and then fine-tuned; this is a 6.1M model
# trained from scratch for under an hour of GPU time (`results/cpu_2026-12-03e/README.md` has the floor row's
# measurements and commands).

# %%
full, floor = shares["full (joint CFG)"], shares["walk to another object (chance)"]
noise_ctx, unguided = shares["first frame only (context dropped)"], shares["guidance none"]
old_full, old_noise = (shares[f"2.3M model: {k}"] for k in ("full (joint CFG)", "first frame only (context dropped)"))
assert (round(full["walk (all six)"], 2), round(full["no backtrack"], 2)) == (0.5, 0.57)
assert (round(full["target in the final view"], 2), round(unguided["target in the final view"], 2),
        round(noise_ctx["target in the final view"], 2)) == (0.46, 0.33, 0.21)
assert (round(old_full["target in the final view"], 2), round(old_noise["target in the final view"], 2)) == (0.31, 0.28)
assert (round(floor["target in the final view"], 2), round(floor["SD < 0.2"], 2), round(full["SD < 0.2"], 2)) == (
    0.15, 0.07, 0.45)
assert round(full["box on the target"], 2) == 0.31 and floor["IF(SD<0.2)"] == 0.0

# %% [markdown]
# ## The paper's ablations, room by room
# Every condition ran on the same rooms with the same noise seeds, so we compare them **paired**: the difference
# per room, its mean with a 95% bootstrap interval over rooms, how many rooms each side won, and a sign test.
# The paper's rows and ours:
#
# | the paper's ablation | paper | our paired comparison |
# |---|---|---|
# | "without context CFG" (text-only guidance) vs joint CFG | IF 0.04 -> 0.65, SD 0.83 -> 0.11 | joint vs text-only CFG |
# | without vs with auxiliary box | IF(SD<0.2) 0.54 -> 0.65 | box frames vs none (same budget) |
# | contiguous vs non-contiguous context | IF 0.46 -> 0.65, SD 0.32 -> 0.11 | non-contiguous vs contiguous (same budget) |
# | first frame only (qualitative) | - | video context vs noise context (what training feeds when it drops the context) |
#
# "Same budget": the ablation runs trained side by side with the main run, with the same recipe, and are compared
# at the nearest step. Joint CFG vs *no* guidance is an extra row; it is not the paper's ablation.

# %%
rows = {name: d for name, d in res["paired"].items()}
print(paired_table(rows))

# %%
fig, ax = plt.subplots(figsize=(8, 4.2), dpi=100)
show = [(n, d) for n, d in rows.items() if d["n"] and d["key"] in ("IF@0.2", "SD")]
for y, (name, d) in enumerate(show):
    lo, hi = d["ci95"]
    good = (d["key"] == "SD" and hi < 0) or (d["key"] != "SD" and lo > 0)
    bad = (d["key"] == "SD" and lo > 0) or (d["key"] != "SD" and hi < 0)
    ax.plot([lo, hi], [y, y], color="tab:green" if good else "tab:red" if bad else "grey", lw=3)
    ax.plot(d["mean"], y, "ko", ms=4)
ax.axvline(0, color="k", lw=0.8)
ax.set_yticks(range(len(show)), [n.split(" (the paper")[0].replace(": ", "\n", 1) for n, _ in show], fontsize=9)
ax.set_xlabel("paired difference (b - a), 95% interval; SD: lower is better, IF(SD<0.2): higher", fontsize=9)
ax.tick_params(axis="x", labelsize=9)
ax.invert_yaxis()
fig.tight_layout()

# %% [markdown]
# ## What shows and what does not
# The verdicts below are computed from the paired rows: an effect "shows" when its 95% interval excludes 0.

# %%
for name, d in rows.items():
    if not d["n"]:
        continue
    lo, hi = d["ci95"]
    better = "lower" if d["key"] in ("SD", "pose_err_m") else "higher"
    if lo > 0 or hi < 0:
        direction = "higher" if lo > 0 else "lower"
        verdict = "shows, in the expected direction" if direction == better else "shows, AGAINST the expected direction"
    else:
        verdict = "does not show"
    print(f"{verdict:38s} {name}  ({d['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}], {d['wins']}/{d['losses']} rooms)")

# %% [markdown]
# Read it the way the paper's claims would be tested:
# * **Box frames** (the paper: 0.54 -> 0.65): does not show on grounding (+0.08 [-0.03, +0.19], 4 rooms won, 1
#   lost), though the run with box frames makes frames that agree better with the room (PSNR +0.9 dB in 34 of 37
#   rooms). A model trained *without* box frames draws no box, so the judge cannot ask it for one: its IF is the walk
#   and the target prominent in its final view, as the paper's IF counts baselines without a box, and its SD grounds
#   at the final view's centre (`score_clip(marked=False)`). This course first asked those videos for a box too,
#   which scored them 0 in every room and reported box frames as winning 7 rooms to 0: a comparison that could not
#   fail. Check what a metric asks of each condition before you trust a paired row.
# * **Joint vs text-only guidance** (the paper's "without context CFG", its largest effect): does not show
#   (+0.05 [-0.05, +0.16], 3 rooms won, 1 lost; SD not separated). These models barely read the room (below), and
#   context guidance can only amplify what the model reads.
# * **Joint guidance vs none** (not the paper's row): more successes (4 to 0) and a lower SD, but frames that agree
#   *less* with the room (PSNR -0.7 dB in 30 of 38 rooms): guidance pushes the picture toward the instruction at
#   some cost to consistency.
# * **Non-contiguous vs contiguous context**: does not show at this budget (-0.03 [-0.11, +0.05]). At the shipped
#   size, on 200 rooms, it shows in part (below), and mostly through what the context shows.
# * **Video context vs noise** (the "first frame only" input): shows here. With the room's video the model succeeds
#   in 4 rooms more, grounds nearer the target (SD lower in 27 of 38 rooms) and fits the room better. On the 102
#   rooms above (the 2.3M model, the stricter judge) it does not separate: a 38-room effect this size is fragile.
# * **Repeated sampling** (the paper: some try succeeds in about 0.65, 0.76, 0.85 of rooms for 1, 2, 3 tries): the
#   same ceiling rises here, 0.078 -> 0.141 for 1 -> 3 tries on 64 validation rooms (+0.062 [+0.016, +0.125]). But
#   a user must pick one try without ground truth, and none of the three rules in `statistics.SELECTION_RULES`
#   (the most confident red box, the lowest pose residual of the walk, the lowest residual of the final view) finds
#   the successes: the box confidence picks worse (0 rooms better, 3 worse). Chosen on validation, as every choice
#   is, no rule was adopted. On 64 test rooms, as a report: the ceiling 0.078 -> 0.156 (+0.078 [+0.016, +0.156]),
#   the rules -0.016 to +0.031, none showing (`results/cpu_2026-12-05b`). A model that succeeds in 1 room of 13
#   fails in ways these signals cannot see. The shipped 6.1M model's failures are easier to see
#   (`results/cpu_2026-12-06`): on 64 validation rooms the lowest final-view residual of 3 tries wins 9 rooms and
#   loses none (+0.141), so by the rule written before it was adopted; on 64 test rooms it gained +0.047 [-0.031,
#   +0.125] in IF(SD<0.2) (5 rooms to 2, not shown). On the 200 test rooms on the GPU (`results/gpu_2026-12-07c`, try 1
#   being the headline row's own sample) **it shows: 0.140 -> 0.205, +0.065 [+0.020, +0.110]** (17 rooms to 4), the
#   walk ending nearer the target (SD -0.033, shown); the ceiling, some try of 3 succeeding, is 0.280. The validation
#   figure (+0.141) was the best of six rule-and-n pairs on the same rooms, and it shrank by half on fresh rooms, as
#   a choice should be expected to. How many tries, below. To use it: `v4s eval --checkpoint data/v4s-lite --data DIR
#   --out OUT --tries 3`; its default `--pick` is now a better rule, below (`evaluate.pick_try`).
#
# With 38 rooms and success rates under 20%, each IF(SD<0.2) interval is wide: only effects of several rooms
# separate. The lever the measurements point to is a model that uses the room more (below): more steps and rooms
# (this session trained 2,600 steps per run on 2,720 rooms; the recipe plans 20,000 steps), and all 200 test rooms
# scored (the device call's deadline reached 38).

# %% [markdown]
# ### Repeated sampling: how many tries?
# The paper's plot keeps rising with tries. Here too, some try succeeds more often the more tries there are; the
# question for a user is whether the rule that picks one try *without ground truth* keeps up. The number of tries
# was chosen like everything else: on the 64 validation rooms, by a rule written before they were read (8 tries
# against 3 if the pick of 8 wins more rooms than it loses), then reported on the test rooms
# (`results/gpu_2026-12-07e`: 8 tries per room on an H100; 192 of the 200 test rooms so far).

# %%
from v4s_lite.statistics import SELECTION_RULES, format_difference, repeated_sampling

RULE = "final-view residual"  # the rule these tries were picked by (the course's rule at the time)


def tries_of(name, n=8):
    """room -> its tries' metrics, for the rooms holding n tries (a deadline left 8 test rooms with 3)."""
    per_try = results_json(name)["tries"]["full (joint CFG)"]["per_try"]
    return {room: tries for room, tries in per_try.items() if len(tries) >= n}


sets = {"validation, 64 rooms": tries_of("gpu_2026-12-07e/tries_val64_8.json"),
        "test, 192 rooms": tries_of("gpu_2026-12-07e/tries_test200_8.json")}
fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
for (label, per_try), style in zip(sets.items(), ("--", "-")):
    curve = repeated_sampling(per_try)  # {"n": [1..8], "any": ceiling, rule name: the rule's pick}
    ax.plot(curve["n"], curve["any"], "C0" + style, marker="o", ms=3, label=f"some try succeeds ({label})")
    ax.plot(curve["n"], curve[RULE], "C3" + style, marker="o", ms=3, label=f"the rule picks one ({label})")
    print(f"{label:22s} some try: {np.round(curve['any'], 3).tolist()}")
    print(f"{'':22s} the pick: {np.round(curve[RULE], 3).tolist()}")
ax.set(xlabel="tries per room (n)", ylabel="IF(SD<0.2)", ylim=(0, 0.5))
ax.legend(fontsize=7)
ax.grid(alpha=0.3)
fig.tight_layout()

test = sets["test, 192 rooms"]
pick = lambda n: {room: min(tries[:n], key=SELECTION_RULES[RULE]) for room, tries in test.items()}  # noqa: E731
print("test: pick of 8 - pick of 3,", format_difference(paired_difference(pick(3), pick(8), "IF@0.2")))
print("test: pick of 8 - try 1,   ", format_difference(paired_difference(pick(1), pick(8), "IF@0.2")))

# %% [markdown]
# The blue curves rise to 0.44-0.45 at 8 tries; the red ones flatten after 3. On validation the pick of 8 won 3
# rooms and lost 1 against the pick of 3, so by the rule the course adopted 8 tries for this pick; on the test rooms
# it did not hold: the pick of 8 grounds as the pick of 3 does (8 rooms won, 9 lost), though both beat one try. Why: the
# rule ranks tries by how well their final views fit the room, and a succeeding try fits better than a failing one
# in only 0.63 of such pairs (test rooms). With a weak ranking, every extra failing try is one more chance that a
# failure fits the room best; the picture improves (PSNR keeps rising with n, which is what the rule selects) and
# the grounding does not. So with this rule the choice was 8, and 3 costs 3/8 as much and loses nothing measured
# here. The lever is a better judge of one's own tries, not more of them.
#
# **A rule that looks at the target?** The three rules never look at what the box holds. The lite world's instructions
# often name the target's colour ("Find the green plant."), so a pick can ask whether the drawn box holds that colour
# (`bbox.box_colour_share`, stored by the judge as `box_colour`; no ground truth). On the judge's known videos it tells
# a box on the target from a box elsewhere in 35 of 35 rooms. On the model's own tries it does not help
# (`results/cpu_2026-12-07b`, 64 validation rooms, 3 tries, on a CPU):

# %%
from v4s_lite.evaluate import JUDGE

val_colour = results_json("cpu_2026-12-07b/tries_val64_cpu.json")["tries"]["full (joint CFG)"]["per_try"]
picks = {r: {room: min(tries, key=SELECTION_RULES[r]) for room, tries in val_colour.items()}
         for r in ("final-view residual", "named colour in the box")}
print("colour rule - final-view residual, 3 tries:",
      format_difference(paired_difference(picks["final-view residual"], picks["named colour in the box"], "IF@0.2")))
coloured = [m for tries in val_colour.values() for m in tries if m.get("box_colour") is not None and m["box_colour"] >= 0.3]
print(f"tries whose box is mostly the named colour: {len(coloured)}; of them boxed on the target: "
      f"{np.mean([m['box_IoU'] >= JUDGE.box_iou for m in coloured]):.2f}")

# %% [markdown]
# The model nearly always paints the named colour inside its box, whether or not the target is there: it learned to
# draw what the instruction says. A check that reads only the generated pixels is fooled by a generator trained to
# produce them; what tells a real find from a painted one is agreement with the room (where the box lands in 3D),
# which is what the final-view residual measures, weakly.
#
# **Checking the claim against the room.** The final-view residual asks whether the whole final view fits the room;
# the question is narrower: does the room hold the named colour *where the box is*? The judge already re-renders
# the room at the poses the video's own frames imply (its pose search), so it can read the colour under the drawn box
# in that render too (`room_colour`, beside the video's own `box_colour`). A painted find has the colour in the
# video and not in the room (`calibration.painted_video` makes one: a perfect walk to another object, repainted); a
# real find has it in both. Neither number uses the target's identity or place: the room (which the residual rules
# use too; a real scan would need its 3D reconstruction) and the instruction's words.

# %%
from v4s_lite.calibration import ground_truth_video, painted_video
from v4s_lite.config import ClipConfig
from v4s_lite.data import clip_meta
from v4s_lite.evaluate import room_estimator, score_clip
from v4s_lite.language import named_colour
from v4s_lite.scene import make_scene
from v4s_lite.world import make_clip

short = ClipConfig(width=104, height=64, scan_frames=17, context_chunks=2, target_chunks=2, box_frames=4)  # quick
room = make_scene(5)  # "Go to the yellow bookshelf."
meta = clip_meta(make_clip(room, "grounding", short, seed=5), short)
colour = named_colour(meta["instruction"])
other = next(o.id for o in room.objects if o.color != colour)
estimator = room_estimator(meta)  # the judge's pose search in this room
videos = {"the true walk": ground_truth_video(meta),
          f"the {room.object(other).name}, painted": painted_video(meta, other, colour)}
fig, ax = plt.subplots(1, 4, figsize=(9, 1.9), dpi=100)
for i, (name, video) in enumerate(videos.items()):
    m = score_clip(meta, video, estimator, lpips=False)
    ax[2 * i].imshow(video[-1])
    ax[2 * i].set_title(f"{name}\nin the video: {m['box_colour']:.2f} {colour}", fontsize=8)
    ax[2 * i + 1].imshow(m["render"][-1])  # the room re-rendered at the pose the video's last frame implies
    ax[2 * i + 1].set_title(f"the room there\n{m['room_colour']:.2f} {colour}", fontsize=8)
    print(f"{name:26s} box_colour {m['box_colour']:.2f}  room_colour {m['room_colour']:.2f}  IF@0.2 {m['IF@0.2']:.0f}")
for a in ax:
    a.axis("off")
fig.tight_layout()

# %% [markdown]
# The rule **"named colour, in the box and in the room"** picks the try with the largest min(box_colour,
# room_colour), ties broken by the final-view residual (so where no colour is named it is that rule). On the known
# videos of 14 validation rooms it picks the true walk over the painted one and the unpainted one in 14 of 14
# (`results/cpu_2026-12-07c`). On the model's own tries it was chosen or not like everything else, on the 64
# validation rooms by a rule written before they were read (`results/gpu_2026-12-07g/README.md`):

# %%
from v4s_lite.statistics import ranking_share

val_agree = results_json("cpu_2026-12-07c/tries_val64_cpu.json")["tries"]["full (joint CFG)"]["per_try"]
AGREE = "named colour, in the box and in the room"
picks = {r: {room: min(tries, key=SELECTION_RULES[r]) for room, tries in val_agree.items()}
         for r in ("final-view residual", AGREE)}
print("agreement rule - final-view residual, 3 tries:",
      format_difference(paired_difference(picks["final-view residual"], picks[AGREE], "IF@0.2")))
for r in ("final-view residual", AGREE):  # within rooms holding both, the share of (success, failure) pairs in order
    share, rooms = ranking_share(val_agree, SELECTION_RULES[r])
    print(f"{r:42s} ranks a success above a failure in {share:.2f} of pairs ({rooms} rooms)")

# %% [markdown]
# It shows, on validation: 4 rooms won and none lost (+0.062 [+0.016, +0.125]), and the best ranking of any rule
# (0.71 of the success-failure pairs, where the final-view residual ranks 0.57), so by the rule written before the
# run the course adopted it, at the 3 tries it was measured with: `v4s eval ... --tries 3` picks by it by default.
# Where no chromatic colour is named (29 of the 64 rooms) it is the final-view residual; where another object shares
# the target's colour (13 of the other 35) it can be fooled. A validation lead of 4 rooms has shrunk on fresh rooms
# before (3-to-1 for 8 tries, above), so the test rooms decide nothing and report: 64 of them, 3 tries each, on a CPU
# (`results/cpu_2026-12-08`; no GPU was lent that day):

# %%
test_agree = results_json("cpu_2026-12-08/tries_test64_cpu.json")["tries"]["full (joint CFG)"]["per_try"]
picks_test = {r: {room: min(tries, key=SELECTION_RULES[r]) for room, tries in test_agree.items()}
              for r in ("final-view residual", AGREE)}
print("test: agreement rule - final-view residual, 3 tries:",
      format_difference(paired_difference(picks_test["final-view residual"], picks_test[AGREE], "IF@0.2")))
print("test: agreement rule's pick of 3 - try 1:        ",
      format_difference(paired_difference({room: tries[0] for room, tries in test_agree.items()},
                                          picks_test[AGREE], "IF@0.2")))
for r in ("final-view residual", AGREE):
    share, rooms = ranking_share(test_agree, SELECTION_RULES[r])
    print(f"{r:42s} ranks a success above a failure in {share:.2f} of pairs ({rooms} rooms)")

# %% [markdown]
# It did not hold: on fresh rooms the agreement rule picks a success as often as the final-view residual (4 rooms
# won, 5 lost), and ranks pairs no better. The course keeps it (a choice is made on validation; a test result inside
# 0 does not reverse it) and says so here: this lever, as measured, is not shown to work. What does show on test is
# repeated sampling itself: the pick of 3 beats one try, 10 rooms to 1, the interval above 0. The lesson of the colour
# rule stands: a verifier of a generator should check what the generator cannot fake (the room under the box, not
# the pixels the generator was trained to make); checking the *colour* there was not enough.
#
# **Checking the *thing* against the room.** Colour says nothing where the instruction names none ("Show me the
# bookshelf.") or a neutral one (white, gray, black: 29 of the 64 validation rooms in all) and cannot tell a blue
# stool from a blue bed. A detector can: the course trains a small
# one (`verifier.CategoryVerifier`, 62k parameters, on rooms of its own, seeds 90,000+) that reads the room
# re-rendered under the drawn box (its colours and each pixel's height above the floor) and says which furniture
# category is there. It reads the room, never the video, so a generator cannot paint its way past it; with a real scan
# it would be an open-vocabulary detector run on the reconstruction. The judge stores its probability for the named
# category as `room_category`. Here the room holds a blue bed beside the blue stool the instruction names:

# %%
from v4s_lite.calibration import approach_video
from v4s_lite.language import named_category

room = make_scene(6)  # "Go to the blue stool."; the room also holds a blue bed
meta = clip_meta(make_clip(room, "grounding", short, seed=6), short)
target = room.object(meta["target_id"])
twin = next(o for o in room.objects if o.category != target.category and o.color == target.color)
estimator = room_estimator(meta)
print(meta["instruction"], "-> category:", named_category(meta["instruction"]))
fig, ax = plt.subplots(1, 2, figsize=(6, 2.1), dpi=100)
for a, (name, video) in zip(ax, {"the true walk": ground_truth_video(meta),
                                 f"a walk to the {twin.name}": approach_video(meta, twin.id)}.items()):
    m = score_clip(meta, video, estimator, lpips=False)  # room_category: by the course's verifier
    x0, y0, x1, y1 = m["box"]
    a.imshow(m["render"][-1])  # the room at the pose the video's last frame implies, the drawn box on it
    a.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="red", lw=1.5))
    a.set_title(f"{name}\nthe room under the box: {m['room_colour']:.2f} blue, {m['room_category']:.2f} stool",
                fontsize=8)
    a.axis("off")
    print(f"{name:26s} room_colour {m['room_colour']:.2f}  room_category {m['room_category']:.2f}")
fig.tight_layout()

# %% [markdown]
# The colour agrees for both walks; the shape does not. The rule **"named thing, in the box and in the room"** picks
# the try with the largest room_category x min(box_colour, room_colour) (each factor where measured). Whether it beats
# the agreement rule on the model's own tries was decided on the validation rooms by a rule written before they were
# scored (`results/cpu_2026-12-08/README.md`; only the 21 rooms whose three tries differ in IF(SD<0.2) were scored
# again, since in the others every pick grounds alike):

# %%
val_thing = results_json("cpu_2026-12-08/tries_val64_thing.json")["tries"]["full (joint CFG)"]["per_try"]
THING = "named thing, in the box and in the room"
picks = {r: {room: min(tries, key=SELECTION_RULES[r]) for room, tries in val_thing.items()} for r in (AGREE, THING)}
print("validation: thing rule - agreement rule, 3 tries:",
      format_difference(paired_difference(picks[AGREE], picks[THING], "IF@0.2")))
for r in ("final-view residual", AGREE, THING):
    share, rooms = ranking_share(val_thing, SELECTION_RULES[r])
    print(f"{r:42s} ranks a success above a failure in {share:.2f} of pairs ({rooms} rooms)")

# %% [markdown]
# By the rule written before the run it is adopted (`v4s eval --tries 3` picks by it): 4 rooms won, 2 lost against
# the agreement rule, and the best ranking yet (a success first in 0.81 of pairs). A lead of 2 rooms is the size that
# vanished on test three times in this notebook, so read it as the next thing to test, not a result: its test report
# is the next step (`results/cpu_2026-12-08/README.md` has the command). And note what the verifier costs: a
# detector trained on the lite world's furniture. With a real scan it would be a detector you trust on that scan.
#
# **Exercise: the rule's pick.** Write `my_pick_curve(per_try, n_max)`: for n = 1..n_max, the share of rooms whose
# picked try (of the first n, the one with the smallest `SELECTION_RULES[RULE]` key, i.e. the lowest final-view
# residual `residual_end`) has IF@0.2 = 1. It is checked against `statistics.repeated_sampling` on the test rooms.

# %%
def my_pick_curve(per_try, n_max):
    raise NotImplementedError  # your code here: a list of n_max shares


# %% jupyter={"source_hidden": true}
def solution_pick_curve(per_try, n_max):
    picked = lambda tries: min(tries, key=lambda m: m["residual_end"])  # noqa: E731
    return [float(np.mean([picked(tries[:n])["IF@0.2"] for tries in per_try.values()])) for n in range(1, n_max + 1)]


# %%
check_exercise("the rule's pick of n tries", my_pick_curve, solution_pick_curve,
               reference=repeated_sampling(test)[RULE], args=(test, 8))

# %% [markdown]
# ### Box frames again, on 178 test rooms
# 37 rooms decide little, so a later session trained the pair again, side by side on one H200 for the same time:
# the lite recipe (walks that end at a view of the target the context shows, `make-data --end scan`, below) with
# and without box frames, ~6,950 steps each on 2,880 fresh rooms, then scored both on the first 178 test rooms with
# the corrected judge (`results/gpu_2026-12-04e/README.md` has the commands):

# %%
pair = results_json("gpu_2026-12-04e/lite_tables_test.json")["conditions"]
none, boxed = pair["without box frames"]["per_clip"], pair["full, same budget"]["per_clip"]
box_rows = {key: paired_difference(none, boxed, key) for key in ("IF@0.2", "SD", "walk", "fits_room", "PSNR")}
for key, d in box_rows.items():
    print(f"box frames - none, {key:9s} {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]  "
          f"{d['wins']} rooms higher / {d['losses']} lower of {d['n']}")
assert box_rows["IF@0.2"]["ci95"][0] < 0 < box_rows["IF@0.2"]["ci95"][1]  # grounding: not separated
assert box_rows["fits_room"]["ci95"][0] > 0 and box_rows["PSNR"]["ci95"][0] > 0  # consistency: separated

# %% [markdown]
# Grounding still does not separate: 7 rooms to 8, the interval straddles 0 (the paper: +0.11). What box frames do
# change, on 5x the rooms, is the walk itself: with them the video fits the room in 25 more rooms and in none
# fewer, its frames agree better with the room (PSNR +0.9 dB in 151 of 178 rooms; the judge leaves the drawn box's
# thin line out of this comparison, a favour to the marked videos of about 0.1 dB, measured in
# `results/gpu_2026-12-04f/README.md`), and more walks pass all six checks.
# Marking the target on the final, still view seems to teach a lite model to keep its walk inside the room; it does
# not teach it *which* object to walk to. Read this as the paper's auxiliary signal helping the part of the task the
# lite model can do.

# %% [markdown]
# ### Box frames at the shipped size: 6.1M parameters, 200 test rooms
# Does that hold for the shipped model? Its first 13,311 steps (from scratch, the shipped recipe) are the box arm; a
# later lease trained the same command on the same rooms with `--set box_frames=false` for the same 13,311 steps and
# scored both on all 200 test rooms (`results/gpu_2026-12-06h/README.md`). One detail makes the judged IF unfair to
# the box arm: a marked video must also put its red box on the target, an unmarked one only needs the target
# prominent in its final view. `apply_judge` can re-judge the stored numbers of the marked videos without asking for
# the box, which gives the like-for-like row.

# %%
from v4s_lite.evaluate import apply_judge

pair6 = results_json("gpu_2026-12-06h/lease/lite_tables_test.json.xz")["conditions"]
none6, boxed6 = pair6["without box frames"]["per_clip"], pair6["full, same budget"]["per_clip"]
unasked6 = {room: apply_judge({**m, "marked": False}) for room, m in boxed6.items()}  # the box asked of neither
box6 = {"IF@0.2 (as judged)": paired_difference(none6, boxed6, "IF@0.2"),
        "IF@0.2 (box asked of neither)": paired_difference(none6, unasked6, "IF@0.2"),
        **{key: paired_difference(none6, boxed6, key) for key in ("SD", "walk", "fits_room", "PSNR")}}
for key, d in box6.items():
    print(f"box frames - none, {key:30s} {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]  "
          f"{d['wins']} rooms higher / {d['losses']} lower of {d['n']}")
assert box6["IF@0.2 (box asked of neither)"]["ci95"][0] < 0 < box6["IF@0.2 (box asked of neither)"]["ci95"][1]
assert box6["PSNR"]["ci95"][1] < 0  # the frames agree a little less with the room when they carry the box

# %% [markdown]
# At this size the paper's direction does not show: like for like, box frames ground 0.025 *less* (not separated);
# the walk and the fit to the room no longer differ (both arms fit the room in 94-97% of the videos, so the 2.3M
# model's advantage has nothing left to add), and the frames agree 0.2 dB less with the room. The target also ends
# prominent in fewer final views with the box (-0.085 [-0.155, -0.020], `box_pairs.py` beside the results). The
# course keeps the paper's recipe (box frames on: it is what the paper trains, and what notebook 07 teaches the
# model to draw); this is where the lite measurement and the paper part ways, at the budget the course can afford.

# %% [markdown]
# ### Non-contiguous context at the shipped size
# The same design for the paper's third ablation: a lease trained the shipped recipe on the same rooms for the same
# 13,311 steps with `--set sampling=contiguous` (the 32 context frames one consecutive stretch of the 129-frame scan,
# instead of 8 chunks drawn anywhere in it), and scored both arms on the 200 test rooms, each shown context the way
# it trained (`results/gpu_2026-12-07/README.md`). Both arms draw box frames, so both are judged marked.

# %%
from v4s_lite.evaluate import JUDGE

pairc = results_json("gpu_2026-12-07/lease/lite_tables_test.json.xz")["conditions"]
contig, spread = pairc["contiguous context"]["per_clip"], pairc["full, same budget"]["per_clip"]
for m in list(contig.values()) + list(spread.values()):
    m["prominent"] = float(m["target_share"] >= JUDGE.prominent)  # what IF asks of the final view
ctx = {key: paired_difference(contig, spread, key) for key in ("IF@0.2", "SD", "fits_room", "prominent", "PSNR")}
for key, d in ctx.items():
    print(f"non-contiguous - contiguous, {key:9s} {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]  "
          f"{d['wins']} rooms higher / {d['losses']} lower of {d['n']}")
assert ctx["IF@0.2"]["ci95"][0] < 0 < ctx["IF@0.2"]["ci95"][1]  # grounding success: not separated
assert ctx["SD"]["ci95"][1] < 0 and ctx["prominent"]["ci95"][0] > 0  # nearer the target, and more often in view

# %% [markdown]
# Here the paper's direction shows, in part: with non-contiguous context the walk ends nearer the target (SD -0.058,
# the paper 0.32 -> 0.11), the target is prominent in more final views and more walks fit the room. The success
# rate itself, IF(SD<0.2), is +0.04 and not separated (18 rooms to 10).
#
# But the comparison changes two things at once. The contiguous arm was *trained* on consecutive frames, and it is
# also *shown* a consecutive stretch: 32 frames of a 129-frame walk around the room, which may never see the
# target. The context each arm was shown is known (the tables draw it with `ClipDataset(seed=0)`), and so is each
# object's visibility in each scan frame (`meta["context"]["visible"]`); `contig_pairs.py` beside the results
# stored, per room, whether any context frame shows any pixel of the target:

# %%
shows = results_json("gpu_2026-12-07/context_shows_target.json")
print(f"the context shows the target: non-contiguous {sum(s['noncontiguous'] for s in shows.values())} of "
      f"{len(shows)} rooms, contiguous {sum(s['contiguous'] for s in shows.values())}")
split = {}
for flag, label in ((True, "contiguous context shows it"), (False, "contiguous context misses it")):
    keep = [r for r, s in shows.items() if s["contiguous"] == flag]
    split[label] = {key: paired_difference({r: contig[r] for r in keep}, {r: spread[r] for r in keep}, key)
                    for key in ("IF@0.2", "SD")}
    print(f"{label:29s} {len(keep):3d} rooms: IF(SD<0.2) contiguous {np.mean([contig[r]['IF@0.2'] for r in keep]):.3f}"
          f" non-contiguous {np.mean([spread[r]['IF@0.2'] for r in keep]):.3f}; SD difference "
          f"{split[label]['SD']['mean']:+.3f} [{split[label]['SD']['ci95'][0]:+.3f}, {split[label]['SD']['ci95'][1]:+.3f}]")
missed = [r for r, s in shows.items() if not s["contiguous"]]
assert sum(contig[r]["IF@0.2"] for r in missed) == 0  # never shown the target, the contiguous arm never finds it
assert abs(split["contiguous context misses it"]["SD"]["mean"]) > abs(split["contiguous context shows it"]["SD"]["mean"])

# %% [markdown]
# In the 37 rooms whose contiguous stretch never shows the target, the contiguous arm succeeds in none and ends far
# from it; the non-contiguous arm, shown the whole room, succeeds in 4 of them. Where the contiguous stretch shows the
# target, the gap in SD shrinks to a third (still separated), and IF(SD<0.2) does not separate at all.
#
# A cleaner split needs a third row: the *non-contiguous* model shown the contiguous context the contiguous arm saw
# (`tables.CONTIGUOUS_AT_INFERENCE`). Against the full row it measures the input alone (one model, two contexts);
# against the contiguous arm, the training alone (two models, one context). It was made on a CPU for all 200 rooms
# (no GPU was free), so it pairs CPU videos with GPU videos, which adds noise: the same model and seeds on the two
# devices disagree on 2 of 20 verdicts (`results/gpu_2026-12-07/README.md`).

# %%
from v4s_lite.tables import CONTIGUOUS_AT_INFERENCE

cpu_row = results_json("gpu_2026-12-07/inference_only_cpu.json.xz")["conditions"]
shown = cpu_row[CONTIGUOUS_AT_INFERENCE]["per_clip"]  # the non-contiguous model, contiguous context


def on(per_clip):  # the rooms this row reached
    return {r: per_clip[r] for r in shown}


parts = {"the whole ablation": (on(contig), on(spread)), "the input alone": (shown, on(spread)),
         "the training alone": (on(contig), shown)}
for name, (a, b) in parts.items():
    d = {key: paired_difference(a, b, key) for key in ("IF@0.2", "SD")}
    print(f"{name:19s} ({len(shown)} rooms): IF(SD<0.2) {d['IF@0.2']['mean']:+.3f} "
          f"[{d['IF@0.2']['ci95'][0]:+.3f}, {d['IF@0.2']['ci95'][1]:+.3f}], SD {d['SD']['mean']:+.3f} "
          f"[{d['SD']['ci95'][0]:+.3f}, {d['SD']['ci95'][1]:+.3f}]")
    parts[name] = d
assert abs(parts["the training alone"]["SD"]["mean"]) < abs(parts["the input alone"]["SD"]["mean"])
assert parts["the input alone"]["SD"]["ci95"][1] < 0  # the context shown: separated
assert parts["the training alone"]["SD"]["ci95"][0] < 0 < parts["the training alone"]["SD"]["ci95"][1]  # not
assert parts["the training alone"]["IF@0.2"]["mean"] == 0

# %% [markdown]
# Most of the difference goes with the context shown: one model, two contexts, SD -0.036, separated, and the
# success rate +0.040 with its interval touching 0. How the model was trained carries the smaller part: shown the
# same contiguous stretch, the two models succeed equally often (IF(SD<0.2) 0.060 each) and end alike (SD -0.022,
# not separated), though the non-contiguous model's final view holds the target more often (`contig_pairs.md`
# beside the results: prominent +0.080, shown). Together with the coverage split the reading is consistent. These
# models gain from non-contiguous sampling mostly what a wider look at the room gives, not the positions the paper
# credits; "Which lever" below finds the same from the other side. The
# paper's comparison has the same two parts and does not separate them either. The course keeps the paper's
# non-contiguous sampling: it is the recipe, and here it is also the better one.

# %% [markdown]
# ## Which lever: a bigger model?
# If the model is too small to hold a room, a larger one should ground more. The course tried it: three sizes of
# the same transformer (2.3M, 6.1M and 17.1M parameters), the same 2,000 training rooms and recipe, trained side by
# side on one H200 for the same ~8 minutes, then judged on **validation** rooms (the choice is made there; the test
# rooms only report). `results/lite_2026-12-03b/README.md` has the commands.

# %%
sweep = "lite_2026-12-03b"
val = results_json(f"{sweep}/lite_tables_val.json")["conditions"]
runs = {"shipped": "shipped (2.3M, 3,501 steps)", "lite": "lite (2.3M)", "lite_m": "lite_m (6.1M)",
        "lite_l": "lite_l (17.1M)"}
print(markdown_table({label: val[f"full: {r}"]["summary"] for r, label in runs.items()}))
for r in ("lite_m", "lite_l"):
    d = paired_difference(val["full: lite"]["per_clip"], val[f"full: {r}"]["per_clip"], "IF@0.2")
    print(f"{r} vs lite, IF(SD<0.2): {d['mean']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}], "
          f"{d['wins']} rooms won / {d['losses']} lost")

# %%
fig, ax = plt.subplots(figsize=(6, 3), dpi=100)
for r in ("lite", "lite_m", "lite_l"):
    log = read_log(results_file(f"{sweep}/loss_{r}.jsonl"))  # the run's loss.jsonl, kept in results/
    step, loss = np.array([x["step"] for x in log]), np.array([x["loss"] for x in log])
    ax.plot(step[4:-4], np.convolve(loss, np.ones(9) / 9, mode="valid"), label=runs[r])
    print(f"{runs[r]:15s} {step[-1]:5d} steps in the same time, final training loss {loss[-10:].mean():.3f}")
ax.set(xlabel="step (batch 64)", ylabel="training loss (9-point mean)", ylim=(0.3, 0.6))
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
fig.tight_layout()

# %% [markdown]
# Per **step** the larger models learn faster; per **second** they take fewer steps, and all three end at the same
# loss. On validation no interval separates them (25-26 rooms each). The sweep says the lever is device time (steps
# times size), not one size: none of the three is full yet, their losses still fall. The rule chose the small run
# (4 of 26 rooms against the then shipped 2.3M model's 2), but on the first 27 test rooms it grounds 2 where that model
# grounds 5, and a model is shipped only with test figures on 200 rooms, so the (then 2.3M) shipped model stays. This is how a
# choice can look on 26 rooms: read intervals, not rankings.
#
# Eight minutes of a shared GPU is short. Later the 17.1M model had a lease to itself (`results/gpu_2026-12-07d`:
# from scratch on the shipped model's own first 2,880 rooms, 4,001 steps in 379 s of an H100, compared with the
# 6.1M run of those rooms). The answer held. Per step it learns faster (training loss 0.301 against 0.318 at steps
# 3,000-4,000) and leans on the room more (another room's context +11.1% at the walk's destination, against +8.2%),
# but each step costs 1.8x, so per second of the same GPU the two sizes are level (0.301 against 0.302), and on 64
# validation rooms it grounds 8 where the 6.1M model at about the same device time grounds 4: +0.062 [-0.031, +0.156],
# not separated. Size is a lever this course cannot pull further anyway: 34 MB of weights cannot travel to the next
# lease beside the repository, 12 MB can, so the shipped size is the one that can be trained lease after lease.

# %% [markdown]
# ## Does the model listen?
# Sampling and scoring is slow. A faster question: does the model denoise the target *better* with the true
# instruction and context than with another clip's? `flow.condition_gaps` measures the flow-matching loss with
# each condition replaced (same noise, same sigma), as a relative gap. Gaps near 0 mean a condition is ignored.

# %%
from v4s_lite.checkpoints import load_model
from v4s_lite.config import TrainConfig
from v4s_lite.flow import CONDITION_PROBES, condition_gaps
from v4s_lite.latents import encode_clips
from v4s_lite.resources import shipped_model

lite_dir = shipped_model(must_exist=False)
if lite_dir is not None:
    model, codec, text_encoder, _ = load_model(lite_dir)
    items = encode_clips(TrainConfig(data_root=str(lite_dir / "clips"), clip="lite", progress=False), codec,
                         text_encoder)
    gaps = condition_gaps(model, items, text_encoder.encode([""])[0], seed=seed)
    print(f"the shipped model: loss with the true conditions {gaps['true']:.3f} ({len(items)} clips)")
    for probe in CONDITION_PROBES[1:]:
        print(f"  with {probe:24s} {100 * gaps[probe + ' gap']:+5.1f}%   by frame of the walk: "
              + " ".join(f"{100 * x:+5.1f}" for x in gaps[probe + " gap by frame"]))
else:
    print("data/v4s-lite/ is missing: no model to probe (see data/v4s-lite/README.md)")

# %% [markdown]
# Two clips are few; on 32 validation rooms (`python tools/condition_gaps.py data/v4s-lite --data
# data/lite/val/id --by-frame`, `results/cpu_2026-12-03e/condition_gaps_val.md`) the 2.3M model shipped then gives: another
# instruction +7.2%, the null instruction +4.3%, another room's context +2.9%, noise context +1.1%. **By frame** the
# two kinds of condition part ways. The instruction's gap grows along the walk, from +0.3% on its first noisy
# latent frame to +14.5% on its last (the destination and its box frames): the model uses *what* to look for
# exactly where it matters. Another room's context stays at +2 to +4% on every frame, the last ones included: at
# the destination, where the room's layout should say where the target is, the model hardly looks at the room.
# That is the "Where the videos fail" table again, seen from the loss: the course's target is a context gap of 10%
# or more, and a gap this small is why the context-dependent ablations (joint vs text guidance, non-contiguous
# sampling) cannot show yet. To watch the gaps *while* a model trains, give `v4s train` two or more
# `validation_clips` and a `validate_every`: each validation step logs them to `validation.jsonl` and TensorBoard.
#
# **The model shipped now** (6.1M, 27,452 steps) on the same 32 rooms (`results/gpu_2026-12-06d/condition_gaps_val_cpu.md`):
# another instruction +8.5%, the null instruction +1.8%, **another room's context +7.3%**, noise context +1.5%. By
# frame the room's gap is +3.5% to +10.9% and **+9.2% at the destination** (the 2.3M model: +2 to +4%), and the
# instruction's still grows to +17.9% there. This is the loss-side view of the "first frame only" row above: it reads
# the room where the target must be found.
#
# **By noise level** the picture sharpens (for the 2.3M model: `python tools/condition_gaps.py data/v4s-lite --data
# data/lite/val/id --by-sigma 0.3 0.7 0.95 1.0`, `results/gpu_2026-12-04/README.md`; at the destination): another room's
# context costs +1.6% at noise 0.3, +5.9% at 0.7, +1.9% at 0.95 and +0.2% at pure noise; another instruction +1.2%,
# +5.2%, +60.8%, +19.3%. Sampling starts from pure noise, and that is where it decides which way the walk goes:
# there the model listens to the instruction and not to the room. It uses the room only to sharpen a layout that is
# already half visible. The paper's spatial reasoning is the missing half: finding the target in the scan. The
# shipped 6.1M model moves the middle levels, not the start: at the destination another room's context costs it
# +13.5% at noise 0.7 and +5.8% at 0.95, but -0.3% at pure noise, where the instruction's gap is +16.7%.
#
# **What did not close it** (measured on the GPU, `results/gpu_2026-12-04` and `results/gpu_2026-12-04b`): models
# of 2.3M to 17M parameters, 1,600 to 14,600 steps, 3,200 fresh rooms per run, and walks that start at one of the
# scan's own views (so the first frame is a context frame to match). Every one of them left the room's gap at the
# destination between +2.5% and +5.4%, while the instruction's gap kept growing with the steps. To find the target
# the model must also work out where each context frame's camera stood, from pictures alone: the scans start anywhere
# on their ring and turn either way. `v4s make-data --scan canonical` removes that part (every scan starts in one
# place and turns one way, so a frame's index says where its camera stands). Measured (`results/gpu_2026-12-04c`):
# it does not help either. After 11,070 steps on fresh rooms with canonical scans the room's gap at the destination
# is +2.7% on the validation rooms, flat since step 8,000 (`tools/condition_gaps.py` on this CPU); the random-scan
# run of the same recipe gives +2.7% on the same rooms after 10,001 steps.
#
# So, by elimination: with this recipe the lite model learns to follow the instruction and to continue a walk, but
# not to *retrieve* the target's views from the context, whether or not it has to infer the scan's geometry. This is
# where the course parts from the paper: Video4Spatial's 5B model, pretrained on web video, brings the ability to
# match views across a long video with it; a 2.3M model trained from scratch for minutes does not acquire it. The
# context-dependent ablations below (joint vs text guidance, non-contiguous sampling) therefore cannot show with
# the lite model, and the course says so rather than reading noise as an effect.
#
# One difference from the paper remains untested. Every walk above ends at a view no context frame shows, so
# reading the room means *synthesising* a new view; in the paper's recordings the target segment is cut from the
# recording the context comes from, so the answer can also be *found*. `v4s make-data --end scan` ends the walk at
# the scan's best view of the target. The models above do not use such an answer even when it is there: on the same
# 32 validation rooms with `--end scan` walks, the room's gap at the destination is +3.0% for the 2.3M model and
# for the canonical-scan run, against +3.6% on the usual walks (`results/gpu_2026-12-04d/gaps_val_end_cpu.txt`).
#
# A model *trained* on such walks does (`results/gpu_2026-12-04e/README.md`): the same 2.3M model and recipe, 6,993
# steps on 2,880 fresh rooms whose walks end at a scan view, reaches **+10.1%** at the destination on those rooms
# (the course's bar for "reads the room" is 10%), rising with every 2,000 steps; on the usual walks it stays at
# +4.1%. So retrieval is learnable at this size; synthesising a view the context never showed is what no run
# learned. But it did not ground more: on 179 test rooms its IF(SD<0.2) is 0.05 against the 2.3M model's 0.11
# (paired -0.06 [-0.12, -0.01]). At pure noise, where sampling decides the walk, it listens to the instruction
# hardly at all (+0.4% against the 2.3M model's +19%): it walks to a view of the room it has seen, without asking
# which object was named. One thing did move with it: context guidance, which can only amplify what a model reads.
# On 32 validation rooms, end_lite's joint CFG grounds nearer the target than its text-only CFG (SD -0.065 [-0.124,
# -0.002], 20 rooms to 12), where the 2.3M model's pair does not separate (200 test rooms: SD +0.002 [-0.025,
# +0.027]): a hint for the next test run, not yet a result. Reading the room and following the instruction have to
# be learned *together*; that is the paper's task.
#
# So the next run trained on both kinds of walk at once (`tools/gpu_lite.sh` with `END=mixed`: half the seed blocks'
# walks end at a scan view, half at the object; `results/gpu_2026-12-04f/README.md`), with its verdict written
# before it ran: both gaps at the destination at 10% or more. After 9,755 steps it landed *between* the two recipes
# it mixes, on both: the room's gap +8.6% on the scan-view walks (end_lite +10.1%) and +6.1% on the usual ones (the
# highest of any model trained with box frames), the instruction's +8.4% (the 2.3M model +14.5%). Neither reaches
# 10%, and on the 64 validation rooms it grounds no better than the 2.3M model (IF(SD<0.2) 0.11 against 0.09,
# paired +0.02 [-0.05, +0.09]; on 200 fresh validation rooms -0.025 [-0.065, +0.015]), so the 2.3M model stays
# and no test room was spent on it. At this size and these
# few minutes of training the two skills traded off rather than added up. Training time, tested next
# (`results/gpu_2026-12-05d`: the same recipe for 20,000 steps from the shipped weights): the held-out loss fell 13%,
# the instruction's gap rose to +13.4% and the room's to +8.6%, yet on 200 fresh validation rooms it grounded no
# better than the 2.3M model (-0.030 [-0.075, +0.010]). A lower loss is not more grounding here. A larger model
# (`results/gpu_2026-12-06`: 6.1M parameters, 4,991 steps from scratch) reached the same room gap (+8.5%) in a fifth
# of the steps, and grounded no better either (-0.038 [-0.092, +0.015] on 131 validation rooms). Given a whole lease
# (`results/gpu_2026-12-06b`: 13,311 steps from scratch) its room gap at the destination reaches +11.1% (end_lite's
# was +10.1%) and its instruction gap +12.4%: the first model that listens to both past 10%. And on 200 fresh
# validation rooms, where the three models above were level with the 2.3M one or behind it, it is ahead: walks
# that end nearer the target (SD -0.049 [-0.085, -0.012]) and pass all six checks more often (+0.12 [+0.04, +0.20]).
# Its grounding rate leads too, 0.125 against 0.085, but the interval, +0.040 [-0.005, +0.085], still reaches below
# zero, so by the rule written before it ran the 2.3M model stays and no test room has judged it. Size and steps
# together are the lever these measurements point to; its loss was still falling when the lease ended. Trained on
# for another lease (`results/gpu_2026-12-06c`: 27,452 steps in all, 2,880 more fresh rooms), it is the first model
# to pass the rule: on the same 200 validation rooms IF(SD<0.2) 0.180 against 0.085, paired +0.095 [+0.040, +0.155]
# (28 rooms won, 9 lost), SD 0.267 against 0.348. Still far from the paper (and from this course's target of 0.8),
# but the first grounding gain these measurements can tell from noise. So it became the shipped model, and the test
# rooms judged it only then (the section "The shipped model on the same 200 test rooms" above): there its lead over
# the 2.3M model is smaller, +0.035 [-0.020, +0.090] in IF(SD<0.2) with SD lower (shown), and the room's video is
# what it walks by. A third stretch (`results/gpu_2026-12-06e`: 8,575 more steps, 36,027 in all, on 2,880 more fresh
# rooms) moved every column the same way (IF(SD<0.2) 0.210, SD 0.241, the target in the final view 0.55 against
# 0.50), but by less: +0.030 [-0.040, +0.090] over the shipped model on the same 200 validation rooms, which the rule
# does not count, so the shipped model stays and no test room judged it. Steps alone are flattening at this size.
# Last, the rate: every run above trained at a constant 1e-3, and a falling rate at the end (a cool-down,
# `lr_schedule: linear` in `TrainConfig`) usually settles what a constant one keeps shaking. It did settle the loss
# (`results/gpu_2026-12-06f`: 6,206 more steps, 0.238 -> 0.224) and the videos (PSNR +0.31 dB, and SD 0.223, the
# nearest of any lite model: -0.043 [-0.078, -0.009] against the shipped model, shown), but IF(SD<0.2) stayed at
# 0.200 (+0.020 [-0.055, +0.090]), so the shipped model stays. Of the 114 validation walks that end within 0.2 of
# the target, 54 fail the walk checks, 41 of them by turning back: the grounding these runs gained is lost to the walk.
# Is that the judge reading soft pictures as a wandering camera? No (`results/cpu_2026-12-07`): the *true* walk,
# blurred until its PSNR is down to 22.6 dB, passes "no backtrack" in all 24 validation rooms tried (its estimated
# path at most 1.34 times the true one, the threshold 1.5), while the model's failing walks run 1.5-3.8 times too
# long. The turning back is in the videos. Nor does picking, of 3 tries, the one with the shortest estimated path
# beat the course's repeated-sampling rule (the final-view residual, which already lifts the walk from 0.48 to 0.61
# on 64 validation rooms): the walk has to be trained in. Training at higher noise levels, where a video's camera
# path is decided (`results/gpu_2026-12-07b`: logit-normal mean 0.8 instead of 0, so 38% of training draws fall
# above sigma 0.9 instead of 14%), looked at first like the lever: two cool-downs from the shipped weights, side by
# side on the same fresh rooms, differing only in that mean, gave "no backtrack" +0.141 [+0.016, +0.266] on 64
# validation rooms. It did not hold up. On 99 further validation rooms the same weights walked no better than the
# shipped model (-0.030 [-0.131, +0.081]), and two arms trained afresh (3,000 steps each) showed no difference on the
# first 64 rooms either (the walk +0.031 [-0.109, +0.156], "no backtrack" +0.016 [-0.079, +0.109]). The first +0.14
# was noise: 64 rooms, and a rule that counts either of two checks, pass a lever that does nothing more often than
# you would think, and this is why a reading is checked on rooms it has not seen before anything ships. Nothing
# shipped; the paper does not vary the noise levels it trains at either.
#
# **Three checks that need no GPU** (`results/cpu_2026-12-05/README.md`). *Is it memorising its rooms?* No: on 32
# of its own training rooms mixed_lite's loss and gaps are those of validation rooms (the room's gap +6.2% against
# +6.1% on the usual walks), after some 108 passes over its 2,880 rooms, so more rooms is not the next lever. *Does
# its destination look at the views that show the target?* Notebook 06's attention measurement over 32 rooms and
# five models (`tools/attention_probe.py`): none puts more than chance there, not even end_lite, whose loss depends
# on the room the most. *Does it use where each view was taken?* `flow.condition_gaps` has a sixth probe for that,
# "shuffled context chunks": the same room's chunks, each moved to its neighbour's RoPE position. At the
# destination it costs end_lite +0.3% and mixed_lite +0.1%, where another room's chunks cost them +10.1% and +8.6%.
# So the lite models read the context as a *set* of views, for what the room holds (colours, textures, objects),
# and ignore where in the scan each view was taken: the geometry the paper's non-contiguous RoPE positions carry
# (the 17.1M model too: +0.2% at 4,000 steps, `results/gpu_2026-12-07d`).
# That is also why what the contiguous-context ablation above shows is mostly coverage: the contiguous stretch
# sees less of the room, not fewer positions the model would use. The paper's spatial reasoning needs that *where*;
# finding a recipe in which it pays is the open lever.

# %% [markdown]
# ## Exercise: a paired difference
# Write `my_paired(a, b, key)`: for the rooms both conditions scored, the mean of `b[room][key] - a[room][key]`,
# and the number of rooms where b is higher and where it is lower. Check it against `statistics.paired_difference`
# on guidance none (a) vs joint guidance (b), for SD.

# %%
def my_paired(a, b, key):
    raise NotImplementedError  # your code here: return (mean difference, wins of b, losses of b)


# %% jupyter={"source_hidden": true}
def solution_paired(a, b, key):
    d = np.array([b[r][key] - a[r][key] for r in a if r in b and a[r][key] is not None and b[r][key] is not None])
    return (round(float(d.mean()), 6), int((d > 0).sum()), int((d < 0).sum()))


# %%
ref = paired_difference(P["guidance none"], P["full (joint CFG)"], "SD")
check_exercise("paired difference", my_paired, solution_paired,
               reference=(round(ref["mean"], 6), ref["wins"], ref["losses"]),
               args=(P["guidance none"], P["full (joint CFG)"], "SD"))

# %% [markdown]
# **Read an ablation yourself:** in the table above, which comparison has the most lopsided win/loss count, and
# does its interval exclude 0? Then look at the same comparison's IF(SD<0.2) row: why does a metric with a handful
# of successes in 38 rooms decide so little? (A sample answer is in the cell below.)

# %% jupyter={"source_hidden": true}
lopsided = max((d for d in rows.values() if d["n"]), key=lambda d: abs(d["wins"] - d["losses"]))
print("most lopsided:", [n for n, d in rows.items() if d is lopsided][0], f"{lopsided['wins']}/{lopsided['losses']}")
print("a success rate near 10% moves one room at a time: its paired interval spans 0 unless several rooms differ")

# %% [markdown]
# ## How many rooms does a comparison need?
# Before a run, ask how many rooms could show the effect you hope for. Over n rooms the mean of the per-room
# differences has standard error s / sqrt(n), s their spread; a true effect d shows (its interval excludes 0) with
# probability about Phi(|d| sqrt(n) / s - 1.96), and ((1.96 + 0.84) s / d)^2 rooms give 80%.
# `statistics.rooms_needed` plans this from a comparison you already have: here the 2.3M model's joint vs
# text-only guidance on its 200 test rooms.

# %%
from v4s_lite.statistics import rooms_needed

S = {name: c["per_clip"] for name, c in strict_res["conditions"].items()}
for key in ("IF@0.2", "SD"):
    plan = rooms_needed(S["guidance text"], S["full (joint CFG)"], key)
    print(f"joint vs text-only CFG, {key:6s}: {plan['effect']:+.3f} on {plan['n_observed']} rooms, per-room spread "
          f"{plan['sd']:.2f}; shown with probability {plan['power_at'][200]:.2f} at 200 rooms, "
          f"{plan['power_at'][1000]:.2f} at 1,000; 80% needs {plan['rooms']:,} rooms")

# %% [markdown]
# A success metric near 10% moves one room at a time, so its per-room spread (0.29) dwarfs a lead of 0.025: some
# 1,000 rooms would be needed to show it, and the SD difference is too small for any practical number. The paper's
# effect (IF 0.04 -> 0.65) would show in a handful of rooms. So a course-sized comparison can only show large
# effects, and a lead of a few rooms on 32-64 validation rooms says almost nothing. The course checked it
# (`results/cpu_2026-12-05/README.md`): mixed_lite (above) led the 2.3M model on 64 validation rooms by 3 rooms to
# 2 in IF(SD<0.2) and was nearer the target in 43 of them (sign test p = 0.008); on 200 fresh validation rooms it
# trailed, -0.025 [-0.065, +0.015] (7 rooms to 12), and its SD lead halved (-0.018 [-0.049, +0.014], nearer in 108 of
# 200). Plan the rooms before the run, and trust only leads several rooms wide.

# %% [markdown]
# ## Rebuild these tables
# On one GPU, in 10-minute device calls (`tools/gpu_lite.sh`; every figure above with its command in
# `results/lite_2026-12-02/README.md`):
#
# ```bash
# bash tools/gpu_lite.sh data OUT 170                                    # 2,720 training rooms, val and test sets
# bash tools/gpu_lite.sh train OUT 540 lite lite_nobox lite_contiguous   # side by side; repeat to train further
# bash tools/gpu_lite.sh tables OUT test 185 --only "full (joint CFG)" ...   # v4s tables --runs runs --data data/lite/test
# # the size sweep (results/lite_2026-12-03b/README.md): train three sizes, then choose on validation and test the choice
# bash tools/gpu_lite.sh sweep OUT 125 555 lite lite_m lite_l
# bash tools/gpu_lite.sh judge OUT 165 265 lite lite_m lite_l
# # a second sweep at the same wall-clock, a warm start beside two larger models (results/gpu_2026-12-04/README.md)
# bash results/gpu_2026-12-04/calls.sh call1 OUT   # then call2 and call3: the calls as they were sent
# # the floor row, on a CPU (results/cpu_2026-12-03e/README.md): the test rooms, then one row of v4s tables
# v4s tables --runs runs --data data/lite/test --out chance_test.json --device cpu --only "walk to another object (chance)"
# # the shipped model's test tables (results/gpu_2026-12-06d/README.md: three calls, --resume grows one file)
# bash tools/gpu_lite.sh grow OUT 560 --main shipped --only "full (joint CFG)" "guidance text" "guidance none" \
#     "first frame only (context dropped)" "ground truth through the codec" "OOD scenes" "context 2 chunks"
# # the guidance scale, chosen on validation rooms (results/gpu_2026-12-04f/README.md; notebook 06): one row per scale
# v4s tables --runs runs --data data/lite/val --out scales_val.json --main lite --only "full (joint CFG)" --scales 3 8
# ```
#
# ## What you learned / where it lives in v4s_lite
# * `v4s tables` (`v4s_lite/tables.py`): every condition on one evaluation set, `PAIRS` reported as paired
#   differences; `v4s_lite/statistics.py`: `paired_difference` (paired bootstrap + sign test), `paired_table`,
#   `rooms_needed` (how many rooms a comparison needs, planned before the run).
# * Where videos fail: `tables.check_shares` / `check_table` (the share passing each of the judge's checks), beside
#   the floor row "walk to another object (chance)"; `flow.condition_gaps` per frame of the walk ("gap by frame").
# * Choices are made on validation rooms, figures reported on test rooms (docs/DATA.md gives the seed ranges).
#   A lead of a few rooms is not a choice: in the 2026-12-04 sweep the pick led the 2.3M model shipped then 4 rooms to 2 on 35
#   validation rooms and lost 8 to 15 on 171 test rooms. `tables.choose_run` replaces the shipped model only when the
#   paired validation interval excludes 0 (the same `paired_difference` as your exercise above).
# * Repeated sampling (`statistics.repeated_sampling`, `SELECTION_RULES`; `v4s eval --tries N --pick RULE`): the
#   ceiling rises with every try, a ground-truth-free pick only as far as its ranking is good. The 3-versus-8 choice
#   shows a second way a validation lead fails: 3 rooms to 1 on validation, 8 to 9 on test. A verifier should check
#   a try against what the generator cannot paint: the colour in the box fooled the pick; the colour in the room
#   under the box won on validation and not on test; the category there (`verifier.CategoryVerifier`, the judge's
#   `room_category`) won on validation, its test report to come.
# * An ablation is evidence only when its *paired* interval excludes 0; report what does not show as plainly as
#   what does. Next: **10 · full Wan2.2**, the real model on a GPU.

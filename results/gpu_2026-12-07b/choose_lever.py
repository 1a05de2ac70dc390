"""The rule of lease 2026-12-07b, written before the lease (README.md): does training at higher noise levels
(logit_mean 0.8) change the walk, and does either arm replace the shipped model? Validation rooms only.

    python results/gpu_2026-12-07b/choose_lever.py VAL_TABLES.json SHIPPED_VAL_TABLES.json[.xz] OUT_DIR [--need N]
        [--shipped-row ROW]

VAL_TABLES: the lease's "full: mixed_m_cool" and "full: mixed_m_cool_hinoise" rows on the 200 validation rooms;
SHIPPED_VAL_TABLES: ../gpu_2026-12-06g's rows on the same rooms (its "full (joint CFG)": the shipped model, same noise
seed; --shipped-row another row of that file, e.g. "full: mixed_m_warm" of ../gpu_2026-12-06c's CPU rows). Every
row is cut to the rooms all three scored (the summaries recomputed on them). Exits 1 (nothing written) while fewer
than N rooms are common. Writes OUT_DIR/lever_choice.txt (every
figure and the reason) and OUT_DIR/chosen_lever.txt (the run the rule adopts, or "shipped")."""
import argparse
import sys
from pathlib import Path

from v4s_lite import tables
from v4s_lite.resources import read_json
from v4s_lite.statistics import format_difference, paired_difference, summarize

CONTROL, LEVER = "mixed_m_cool", "mixed_m_cool_hinoise"
KEYS = ("IF@0.2", "SD", "walk", "no_backtrack", "no_teleport", "PSNR")
# continuous measures of the same walk, reported beside the rule's pass/fail ones (more power on few rooms; added
# 2026-12-07 10:08 UTC, before any interim room was read): the estimated path over the true walk's (no backtrack
# fails above 1.5), the turning summed along it, the largest step between frames
SECONDARY = ("path_ratio", "turn_deg", "jump_m")


def fmt(d):
    return format_difference(d, " ({wins} higher / {losses} lower of {n})")


def shown(d):
    return bool(d["n"]) and d["ci95"][0] > 0


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("val"), p.add_argument("shipped"), p.add_argument("out")
    p.add_argument("--need", type=int, default=200)
    p.add_argument("--shipped-row", default="full (joint CFG)")
    p.add_argument("--interim", action="store_true", help="a report, not the design's choice: chosen_lever.txt is "
                   "not written (arms short of COOL_STEPS, or fewer rooms than the design's 200)")
    a = p.parse_args(argv)
    res, ship = read_json(a.val), read_json(a.shipped)
    rows = {r: res["conditions"][f"full: {r}"]["per_clip"] for r in (CONTROL, LEVER)}
    if a.shipped_row not in ship["conditions"]:
        sys.exit(f"{a.shipped} has no row {a.shipped_row!r}; its rows: {', '.join(ship['conditions'])} (--shipped-row)")
    rows["shipped"] = ship["conditions"][a.shipped_row]["per_clip"]
    common = set.intersection(*(set(v) for v in rows.values()))
    if len(common) < a.need:
        print(f"rows hold {({r: len(v) for r, v in rows.items()})} rooms, {len(common)} in common; the rule needs "
              f"{a.need}: score the rest first")
        return 1
    pc = {r: {c: m for c, m in v.items() if c in common} for r, v in rows.items()}
    conds = {f"full: {r}": {"per_clip": v, "summary": summarize(v)} for r, v in pc.items()}
    lines = []
    for r in ("shipped", CONTROL, LEVER):
        s = conds[f"full: {r}"]["summary"]
        lines.append(f"{r:22s} n={s['n']} IF@0.2={s['IF@0.2']['mean']:.3f} SD={s['SD']['mean']:.3f} "
                     f"walk={s['walk']['mean']:.3f} PSNR={s['PSNR']['mean']:.2f}")
    # (1) the lever: the arm with higher training noise minus its control, the same rooms, steps and warm start
    d = {k: paired_difference(pc[CONTROL], pc[LEVER], k) for k in KEYS}
    lines += [f"lever ({LEVER} minus {CONTROL}), {k}: {fmt(d[k])}" for k in KEYS]
    lines += [f"lever, secondary, {k}: {fmt(paired_difference(pc[CONTROL], pc[LEVER], k))}" for k in SECONDARY]
    walk = [k for k in ("walk", "no_backtrack") if shown(d[k])]
    lines.append("the lever's walk effect: " + (f"shown on {walk}" if walk else "not shown (walk and no_backtrack "
                                                                                 "intervals include 0 or lie below)"))
    # (2) adoption against the shipped model: tables.choose_run (IF(SD<0.2), a 95% interval above 0), then an arm
    # with SD shown lower and IF(SD<0.2) and walk not lower on average (the solver lease's second tier)
    c = tables.choose_run({"conditions": conds}, ["shipped", CONTROL, LEVER], incumbent="shipped", sd_tier=True)
    chosen, reason = c["chosen"], c["reason"]
    vs = {r: {k: paired_difference(pc["shipped"], pc[r], k) for k in ("IF@0.2", "SD", "walk")} for r in (CONTROL, LEVER)}
    lines += [f"{r} minus shipped, {k}: {fmt(v[k])}" for r, v in vs.items() for k in v]
    if a.interim:
        lines.append(f"(interim: a report, not a choice) the rule would pick: {chosen}\nreason: {reason}")
    else:
        lines.append(f"chosen: {chosen}\nreason: {reason}")
    if chosen != "shipped" and not a.interim:
        lines.append("an adopted arm meets the test rooms (calls.sh phase 5, or a later lease), against the shipped model, before it ships")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    Path(a.out, "lever_choice.txt").write_text("\n".join(lines) + "\n")
    if not a.interim:
        Path(a.out, "chosen_lever.txt").write_text(chosen + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

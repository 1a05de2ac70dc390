"""One arm against the shipped model, paired on the validation rooms both scored, optionally leaving out the rooms a
given file already read (the interim's 64): the out-of-sample check of the interim's "against the shipped model".

    python results/gpu_2026-12-07b/vs_shipped.py ROWS.json[.xz] ROW SHIPPED.json[.xz] SHIPPED_ROW [--exclude READ.json[.xz]]
        [--name NAME]

(--name: what to call the second row when it is not the shipped model, e.g. ../gpu_2026-12-07d's reading 5.)
"""
import argparse

from v4s_lite.resources import read_json
from v4s_lite.statistics import paired_difference, summarize

from choose_lever import fmt  # beside this file: the rule's own format for a paired difference

KEYS = ("IF@0.2", "SD", "walk", "no_backtrack", "no_teleport", "PSNR", "path_ratio")


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("rows"), p.add_argument("row"), p.add_argument("shipped"), p.add_argument("shipped_row")
    p.add_argument("--exclude", help="a tables file whose ROW rooms are left out (rooms already read)")
    p.add_argument("--name", default="shipped", help="the second row's name in the printout")
    a = p.parse_args(argv)
    arm = read_json(a.rows)["conditions"][a.row]["per_clip"]
    ship = read_json(a.shipped)["conditions"][a.shipped_row]["per_clip"]
    seen = set(read_json(a.exclude)["conditions"][a.row]["per_clip"]) if a.exclude else set()
    rooms = sorted(c for c in arm if c in ship and c not in seen)
    arm, ship = {c: arm[c] for c in rooms}, {c: ship[c] for c in rooms}
    for name, pc in ((a.name, ship), (a.row, arm)):
        s = summarize(pc)
        print(f"{name:28s} n={s['n']} IF@0.2={s['IF@0.2']['mean']:.3f} SD={s['SD']['mean']:.3f} "
              f"walk={s['walk']['mean']:.3f} PSNR={s['PSNR']['mean']:.2f}")
    for k in KEYS:
        print(f"{a.row} minus {a.name}, {k}: {fmt(paired_difference(ship, arm, k))}")


if __name__ == "__main__":
    main()

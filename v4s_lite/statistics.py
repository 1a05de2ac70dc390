"""Statistics over many clips (notebooks 08 and 09): means with bootstrap intervals, paired differences between
two conditions scored on the same rooms and noise seeds, repeated sampling, and the paper-style table.

Every condition of the tables is scored on the same rooms with the same noise seeds, so two conditions are
compared clip by clip (`paired_difference`): the room-to-room spread, which dominates the marginal intervals,
cancels. A sign test counts the rooms where one condition won and the other lost.
"""
from __future__ import annotations

import math

import numpy as np

# The table's columns (the paper's grounding table plus the judge's walk check) and the other per-clip numbers
# `summarize` averages when present.
METRIC_KEYS = ("SD", "IF", "IF@0.2", "IF@0.1", "walk", "box_IoU", "PSNR", "SSIM", "DD")
EXTRA_KEYS = ("GT_PSNR", "GT_SSIM", "pose_err_m", "pose_err_deg", "residual", "residual_max", "jump_m",
              "start_err_m", "LPIPS")


def bootstrap_ci(values, n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (NaNs dropped)."""
    v = np.asarray(values, float)
    v = v[~np.isnan(v)]
    if not len(v):
        return float("nan"), float("nan")
    means = v[np.random.default_rng(seed).integers(0, len(v), (n, len(v)))].mean(1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial sign test: the probability of a split at least this uneven if either condition
    were as likely to win each room (ties dropped)."""
    n, k = wins + losses, min(wins, losses)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return float(min(1.0, 2 * tail))


def paired_difference(a: dict, b: dict, key: str, n_boot: int = 2000, seed: int = 0) -> dict:
    """Condition b minus condition a on the clips both scored (a, b: {clip: metrics}): the mean difference, its
    95% paired bootstrap interval (clips resampled together), wins / losses / ties of b, and the sign test."""
    d = _differences(a, b, key)
    if not len(d):
        return {"key": key, "n": 0, "mean": None, "ci95": None, "wins": 0, "losses": 0, "ties": 0, "p_sign": 1.0}
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    lo, hi = bootstrap_ci(d, n=n_boot, seed=seed)
    return {"key": key, "n": len(d), "mean": float(d.mean()), "ci95": [lo, hi], "wins": wins, "losses": losses,
            "ties": len(d) - wins - losses, "p_sign": sign_test(wins, losses)}


def format_difference(d: dict, counts: str | None = " ({wins} won / {losses} lost of {n})") -> str:
    """A paired_difference result as the course's notes print it: "+0.031 [-0.109, +0.156] (12 won / 8 lost of 64)";
    `counts` formats the tail from the result's fields (None: the mean and interval alone)."""
    if not d["n"]:
        return "no paired rooms"
    lo, hi = d["ci95"]
    return f"{d['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}]" + ("" if counts is None else counts.format(**d))


def _differences(a: dict, b: dict, key: str) -> np.ndarray:
    """b minus a, clip by clip, on the clips both scored."""
    clips = [c for c in a if c in b and _finite(a[c].get(key)) and _finite(b[c].get(key))]
    return np.array([b[c][key] - a[c][key] for c in clips], float)


def rooms_needed(a: dict, b: dict, key: str, effect: float | None = None, power: float = 0.8) -> dict:
    """How many rooms a paired comparison needs before its 95% interval excludes 0, planned from a smaller one.
    With per-room differences of spread s, the mean over n rooms has standard error s / sqrt(n), so a true effect
    d is shown with probability ("power") Phi(|d| sqrt(n) / s - 1.96), and n = ((1.96 + z_power) s / d)^2 rooms
    give `power`. `effect`: the difference to plan for (default: the observed mean, itself uncertain). A success
    metric near 10% (IF(SD<0.2)) differs in a few rooms only, so s is large against d: thousands of rooms, where a
    continuous one (SD) needs hundreds. Returns {"n_observed", "effect", "sd", "rooms", "power_at": {n: power}}."""
    from statistics import NormalDist

    from .utils import V4SError

    if not 0 < power < 1:
        raise V4SError(f"power={power}: a probability between 0 and 1, e.g. 0.8")
    d = _differences(a, b, key)
    if len(d) < 2:
        raise V4SError(f"{key}: {len(d)} room(s) scored by both conditions; the spread needs at least 2")
    effect = float(d.mean()) if effect is None else float(effect)
    sd = float(d.std(ddof=1))
    z, norm = NormalDist().inv_cdf(0.975), NormalDist()

    def power_at(n):  # no effect is never shown; no spread shows any effect at once
        return 0.0 if effect == 0 else 1.0 if sd == 0 else round(norm.cdf(abs(effect) * math.sqrt(n) / sd - z), 3)

    rooms = (None if effect == 0 else 2 if sd == 0
             else max(2, math.ceil(((z + norm.inv_cdf(power)) * sd / abs(effect)) ** 2)))
    at = {n: power_at(n) for n in (len(d), 200, 1000)}
    return {"n_observed": len(d), "effect": effect, "sd": sd, "rooms": rooms, "power_at": at}


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def summarize(per_clip: dict) -> dict:
    """Means and 95% bootstrap intervals of every metric over the clips where it applies."""
    keys = [k for k in (*METRIC_KEYS, *EXTRA_KEYS) if any(k in m for m in per_clip.values())]
    out = {}
    for k in keys:
        v = np.array([np.nan if m.get(k) is None else m.get(k, np.nan) for m in per_clip.values()], float)
        n = int((~np.isnan(v)).sum())
        out[k] = {"mean": float(np.nanmean(v)) if n else None, "ci95": list(bootstrap_ci(v)) if n else None, "n": n}
    out["n"] = len(per_clip)
    return out


# Choosing one of several tries without ground truth (the paper only reports "any try succeeds"): each rule is a
# sort key over one try's `score_clip` metrics; the try with the smallest key is chosen: the box detector's
# confidence, how well the generated views fit the room (the pose residual; in the synthetic world the room is known,
# with real scans it would be a reconstruction from the context video), and what the box holds against the
# instruction's colour word. Which rule the course uses is chosen on the validation rooms (notebook 09), and
# reported on the test rooms.
SELECTION_RULES = {
    "box confidence": lambda m: (-m["box_confidence"], m["residual"]),
    "pose residual": lambda m: m["residual"],
    "final-view residual": lambda m: m["residual_end"],
    # the only rule that looks at the target: the share of the box's pixels in the colour the instruction names
    # (bbox.box_colour_share; not measured, or no colour named: 0 for every try), ties broken by the final-view residual
    "named colour in the box": lambda m: (-(m["box_colour"] if _finite(m.get("box_colour")) else 0.0),
                                          m["residual_end"]),
    # the claim checked against the room: the smaller of the named colour's share in the drawn box and in the room
    # re-rendered under that box (evaluate.score_clip's room_colour), ties broken by the final-view residual
    "named colour, in the box and in the room": lambda m: (-_colour_agreement(m), m["residual_end"]),
    # ... and the named category: the agreement above times the furniture detector's probability that the room under
    # the box holds the named category (room_category; verifier.CategoryVerifier), each where measured; so it reads
    # the room's shapes where no colour is named. Ties broken by the final-view residual
    "named thing, in the box and in the room": lambda m: (-_claim_agreement(m), m["residual_end"]),
}


def _colour_agreement(m: dict) -> float:
    """min(box_colour, room_colour): high only when the video shows the named colour in its box *and* the room has
    it there. 0 when either was not measured (no colour named, a neutral one, or a record made before room_colour)."""
    a, b = m.get("box_colour"), m.get("room_colour")
    return min(a, b) if _finite(a) and _finite(b) else 0.0


def _claim_agreement(m: dict) -> float:
    """room_category x min(box_colour, room_colour), each factor where measured (1 where not); 0 when neither is
    (no verifier and no chromatic colour named, or a record made before them)."""
    parts = [m["room_category"]] if _finite(m.get("room_category")) else []
    if _finite(m.get("box_colour")) and _finite(m.get("room_colour")):
        parts.append(_colour_agreement(m))
    return float(np.prod(parts)) if parts else 0.0


def ranking_share(per_try: dict, rule, key: str = "IF@0.2") -> tuple[float, int]:
    """How well a selection rule ranks one room's tries: within the rooms where some tries succeed (key 1) and some
    fail, the share of (success, failure) pairs whose success has the smaller sort key (0.5: a coin; ties count half),
    averaged over those rooms. Returns (share, number of such rooms); (NaN, 0) when no room has both."""
    shares = []
    for tries in per_try.values():
        won = [rule(m) for m in tries if m[key] == 1]
        lost = [rule(m) for m in tries if m[key] == 0]
        if won and lost:
            shares.append(np.mean([(w < f) + 0.5 * (w == f) for w in won for f in lost]))
    return (float(np.mean(shares)), len(shares)) if shares else (float("nan"), 0)


def repeated_sampling(per_try: dict, rules: dict = SELECTION_RULES, key: str = "IF@0.2") -> dict:
    """per_try: {clip: [metrics of try 1, try 2, ...]}. Returns {"n": [1..T], "any": [...], rule: [...]}: the mean
    of `key` over clips when any of the first n tries succeeds, and when each rule picks one of the first n."""
    n_tries = min(len(ms) for ms in per_try.values())
    out = {"n": list(range(1, n_tries + 1)),
           "any": [float(np.mean([max(m[key] for m in ms[:n]) for ms in per_try.values()])) for n in range(1, n_tries + 1)]}
    for name, rule in rules.items():
        out[name] = [float(np.mean([min(ms[:n], key=rule)[key] for ms in per_try.values()])) for n in range(1, n_tries + 1)]
    return out


TABLE_COLUMNS = [("SD", "SD ↓"), ("IF", "IF ↑"), ("IF@0.2", "IF(SD<0.2) ↑"), ("IF@0.1", "IF(SD<0.1) ↑"),
                 ("walk", "walk ↑"), ("box_IoU", "box IoU ↑"), ("PSNR", "PSNR ↑"), ("DD", "DD ↑")]


def markdown_table(rows: dict) -> str:
    """rows: method name -> summary (from `summarize`). Laid out like the paper's grounding table."""
    head = "| Method | " + " | ".join(t for _, t in TABLE_COLUMNS) + " | n |"
    lines = [head, "|" + "---|" * (len(TABLE_COLUMNS) + 2)]
    for name, s in rows.items():
        cells = []
        for k, _ in TABLE_COLUMNS:
            m = s.get(k, {}).get("mean") if isinstance(s.get(k), dict) else None
            cells.append("-" if m is None or (isinstance(m, float) and math.isnan(m)) else f"{m:.3g}")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {s.get('n', 0)} |")
    return "\n".join(lines)


def paired_table(diffs: dict) -> str:
    """diffs: comparison name -> paired_difference result. One row each: mean, interval, wins/losses, sign test."""
    lines = ["| comparison (b - a) | metric | mean | 95% interval | wins / losses / ties | sign test p | n |",
             "|---|---|---|---|---|---|---|"]
    for name, d in diffs.items():
        if not d["n"]:
            lines.append(f"| {name} | {d['key']} | - | - | - | - | 0 |")
            continue
        lo, hi = d["ci95"]
        lines.append(f"| {name} | {d['key']} | {d['mean']:+.3f} | [{lo:+.3f}, {hi:+.3f}] | {d['wins']} / "
                     f"{d['losses']} / {d['ties']} | {d['p_sign']:.3g} | {d['n']} |")
    return "\n".join(lines)

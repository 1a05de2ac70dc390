"""Self-checking exercises for the notebooks.

Pattern in a notebook:
    def my_answer(...):            # the student's stub
        raise NotImplementedError  # your code here
    ...                            # hidden cell: def solution(...)
    check_exercise("project corners", my_answer, solution, reference=lambda: v4s_lite_function(...), args=(...))

`check_exercise` runs the student's function; while it is still a stub it runs the hidden solution instead,
so a notebook always executes end to end (CI checks the solution against the package's reference).
"""
from __future__ import annotations

import numpy as np
import torch


def _as_array(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=float)


def check_exercise(name, student_fn, solution_fn, reference, args=(), kwargs=None, atol=1e-4) -> bool:
    """Compare an answer with the package's reference; print what is right or wrong; return True if right."""
    kwargs = kwargs or {}
    try:
        got = student_fn(*args, **kwargs)
        who = "your answer"
    except NotImplementedError:
        got = solution_fn(*args, **kwargs)
        who = "the hidden solution (fill in the stub to check your own)"
    want = reference() if callable(reference) else reference
    got_a, want_a = _as_array(got), _as_array(want)
    if got_a.shape != want_a.shape:
        print(f"✗ {name}: {who} has shape {got_a.shape}, expected {want_a.shape}")
        return False
    err = float(np.nanmax(np.abs(got_a - want_a))) if got_a.size else 0.0
    same_nan = np.array_equal(np.isnan(got_a), np.isnan(want_a))
    if same_nan and err <= atol:
        print(f"✓ {name}: {who} matches the reference (max abs error {err:.1e})")
        return True
    print(f"✗ {name}: {who} differs from the reference: max abs error {err:.3g} > {atol:g}"
          + ("" if same_nan else " (and NaNs in different places)"))
    return False


# ------------------------------------------------------------------------------------------------------------
# Checkers for exercises where the student builds a mechanism. Each runs the student's function on many cases
# (not one printed example), says which property failed, and falls back to the hidden solution while the
# student's function is still a stub, so a notebook always runs end to end. tests/test_exercises.py checks that
# each accepts the reference and rejects plausible wrong implementations.

def _pick(name, student_fn, solution_fn, probe):
    """(function to check, who) : the student's, or the solution while the student's raises NotImplementedError."""
    try:
        probe(student_fn)
    except NotImplementedError:
        return solution_fn, "the hidden solution (fill in the stub to check your own)"
    except Exception:  # noqa: BLE001 - the student's bug: the checker's loop reports it
        pass
    return student_fn, "your answer"


def _verdict(name, who, problems, detail="") -> bool:
    if problems:
        print(f"✗ {name}: {who} is wrong: {problems[0]}" + (f" (and {len(problems) - 1} more problem(s))"
                                                          if len(problems) > 1 else ""))
        return False
    print(f"✓ {name}: {who} passes every check{detail}")
    return True


def check_context_sampler(name, student_fn, solution_fn, n_scan_frames: int = 65, n_chunks: int = 4,
                          draws: int = 300) -> bool:
    """student_fn(n_scan_frames, n_chunks, rng) -> context frame indices (the paper's non-contiguous sampling).

    Checked on `draws` seeds: frame 0 first, then n_chunks chunks of 4 consecutive frames, each starting at a
    multiple of 4 (>= 4), inside the scan, in time order, no chunk twice; reproducible for a seed; spread over the
    scan (almost every draw has a gap between chunks, and every possible chunk is drawn sometimes).
    """
    from .sampling import n_chunk_slots

    fn, who = _pick(name, student_fn, solution_fn, lambda f: f(n_scan_frames, n_chunks, np.random.default_rng(0)))
    n_slots = n_chunk_slots(n_scan_frames)
    problems, seen, with_gap = [], set(), 0
    for seed in range(draws):
        try:
            idx = [int(i) for i in fn(n_scan_frames, n_chunks, np.random.default_rng(seed))]
        except Exception as e:  # noqa: BLE001 - a student's error is a finding, not a crash
            problems.append(f"raised {type(e).__name__}: {e}")
            break
        if len(idx) != 1 + 4 * n_chunks:
            problems.append(f"returned {len(idx)} indices, expected 1 + 4 x {n_chunks} = {1 + 4 * n_chunks}")
            break
        if idx[0] != 0:
            problems.append(f"the first context frame is {idx[0]}, expected scan frame 0 (its own latent)")
            break
        chunks = [idx[1 + 4 * c: 5 + 4 * c] for c in range(n_chunks)]
        bad = [c for c in chunks if c != list(range(c[0], c[0] + 4)) or c[0] % 4 or c[0] < 4]
        if bad:
            problems.append(f"chunk {bad[0]} is not 4 consecutive frames starting at a multiple of 4 (>= 4): "
                            "a chunk must be exactly one latent of the VAE")
            break
        starts = [c[0] for c in chunks]
        if max(idx) >= n_scan_frames:
            problems.append(f"frame {max(idx)} is past the end of the {n_scan_frames}-frame scan")
            break
        if any(b <= a for a, b in zip(starts, starts[1:])):
            problems.append(f"chunk starts {starts} are not strictly increasing (time order, no chunk twice)")
            break
        if [int(i) for i in fn(n_scan_frames, n_chunks, np.random.default_rng(seed))] != idx:
            problems.append("two calls with the same seed gave different frames: draw only from `rng`")
            break
        seen.update(s // 4 for s in starts)
        with_gap += any(b - a > 4 for a, b in zip(starts, starts[1:]))
    if not problems:
        if n_chunks > 1 and with_gap < 0.95 * draws:
            problems.append(f"only {with_gap} of {draws} draws leave a gap between chunks: that is (mostly) "
                            "contiguous sampling; pick the chunks anywhere in the scan")
        missing = sorted(set(range(1, n_slots + 1)) - seen)
        if missing:
            problems.append(f"in {draws} draws, the chunks starting at frames {[4 * m for m in missing][:6]} never "
                            "came up: every chunk of the scan should be possible (check your range's ends)")
    return _verdict(name, who, problems, f" on {draws} draws ({len(seen)} of {n_slots} chunk slots used)")


def check_rope_positions(name, student_fn, solution_fn, layouts=None) -> bool:
    """student_fn(frame_indices, n_target_latents, gap) -> the temporal RoPE position of every latent of
    [context | target], compared with v4s_lite.rope on several layouts (contiguous, spread out, the first chunk
    right after frame 0, one chunk, gaps 1 and 3)."""
    from .rope import context_positions, sequence_positions

    def chunked(starts):
        return [0] + [s + k for s in starts for k in range(4)]

    layouts = layouts or [(chunked([20, 32, 36, 44]), 5, 1), (chunked([44, 48, 52, 56]), 5, 3),
                          (chunked([4, 60, 120]), 7, 1), (chunked([64]), 2, 2), (chunked([8, 16, 24, 100, 200]), 4, 3)]
    fn, who = _pick(name, student_fn, solution_fn, lambda f: f(*layouts[0]))
    problems = []
    for idx, n_target, gap in layouts:
        want = list(sequence_positions(context_positions(idx), n_target, gap=gap))
        try:
            got = [int(p) for p in fn(list(idx), n_target, gap)]
        except Exception as e:  # noqa: BLE001
            problems.append(f"raised {type(e).__name__}: {e} on chunk starts {idx[1::4]}")
            continue
        if got != want:
            problems.append(f"chunk starts {idx[1::4]}, {n_target} target latents, gap {gap}: got {got}, expected {want}")
    return _verdict(name, who, problems, f" on {len(layouts)} layouts")


def check_condition_dropout(name, student_fn, solution_fn, batch: int = 64, p_text: float = 0.1,
                            p_context: float = 0.1, p_both: float = 0.1, seed: int = 0) -> bool:
    """student_fn(text_emb, context, null_text, u, noise, p_text, p_context, p_both) -> (text_emb, context)
    after condition dropout, with one uniform draw u per sample: u < p_both drops both, the next p_text the
    instruction only, the next p_context the context only. Compared with v4s_lite.cfg.drop_conditions on the
    same draws, at the given rates and at rates that make every case common."""
    from .cfg import drop_conditions

    def case(p_t, p_c, p_b, s):
        g = torch.Generator().manual_seed(s)
        text = torch.randn(batch, 7, 16, generator=g)
        ctx = torch.randn(batch, 4, 5, 3, 6, generator=g)
        null = torch.randn(1, 7, 16, generator=g)
        want = drop_conditions(text, ctx, null, p_text=p_t, p_context=p_c, p_both=p_b,
                               generator=torch.Generator().manual_seed(s + 1))
        g2 = torch.Generator().manual_seed(s + 1)  # the same draws, in the same order, handed to the student
        u = torch.rand(batch, generator=g2)
        noise = torch.randn(ctx.shape, generator=g2)
        return (text, ctx, null, u, noise, p_t, p_c, p_b), want

    cases = [case(p_text, p_context, p_both, seed), case(0.3, 0.3, 0.3, seed + 10), case(0.0, 0.5, 0.2, seed + 20)]
    fn, who = _pick(name, student_fn, solution_fn, lambda f: f(*[a.clone() if isinstance(a, torch.Tensor) else a
                                                                for a in cases[0][0]]))
    problems = []
    for args, want in cases:
        rates = f"p_text {args[5]}, p_context {args[6]}, p_both {args[7]}"
        given = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
        try:
            got_text, got_ctx = fn(*given)
        except Exception as e:  # noqa: BLE001
            problems.append(f"raised {type(e).__name__}: {e}")
            break
        if not all(torch.equal(g, a) for g, a in zip(given, args) if isinstance(a, torch.Tensor)):
            problems.append("it changed its inputs in place: the training batch would lose its conditions for good")
        for what, got, ref in (("text embeddings", got_text, want.text_emb), ("context", got_ctx, want.context_latents)):
            got = torch.as_tensor(got)
            if got.shape != ref.shape:
                problems.append(f"{what} have shape {tuple(got.shape)}, expected {tuple(ref.shape)}")
                continue
            wrong = ~torch.isclose(got.float(), ref.float(), atol=1e-6).flatten(1).all(1)
            if wrong.any():
                i = int(wrong.nonzero()[0])
                u = float(args[3][i])
                problems.append(f"{rates}: sample {i} (u = {u:.3f}) has the wrong {what}; "
                                f"{int(wrong.sum())} of {batch} samples differ")
    return _verdict(name, who, problems, f" on {len(cases)} batches of {batch}")

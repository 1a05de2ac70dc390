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

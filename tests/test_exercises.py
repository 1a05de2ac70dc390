import numpy as np

from v4s_lite.exercises import check_exercise


def _stub(x):
    raise NotImplementedError


def test_check_exercise_reports_right_and_wrong(capsys):
    assert check_exercise("double", lambda x: 2 * x, lambda x: 2 * x, reference=np.array([2.0, 4.0]), args=(np.array([1.0, 2.0]),))
    assert not check_exercise("double", lambda x: 3 * x, lambda x: 2 * x, reference=np.array([2.0, 4.0]), args=(np.array([1.0, 2.0]),))
    assert not check_exercise("shape", lambda x: x[:1], lambda x: x, reference=np.array([1.0, 2.0]), args=(np.array([1.0, 2.0]),))
    out = capsys.readouterr().out
    assert "✓ double" in out and "✗ double" in out and "shape (1,)" in out


def test_stub_falls_back_to_solution(capsys):
    assert check_exercise("stub", _stub, lambda x: x + 1, reference=lambda: 3.0, args=(2.0,))
    assert "hidden solution" in capsys.readouterr().out


# ---- mechanism checkers: each accepts the reference and rejects plausible wrong implementations ----
import torch

from v4s_lite.exercises import check_condition_dropout, check_context_sampler, check_rope_positions
from v4s_lite.sampling import n_chunk_slots, sample_context_frames


def _stub_any(*args):
    raise NotImplementedError


def _chunks(starts):
    return [0] + [int(s) + k for s in starts for k in range(4)]


def sampler_reference(n, c, rng):
    return sample_context_frames(n, c, rng, mode="noncontiguous")


def sampler_contiguous(n, c, rng):  # the ablation, not the paper's sampling
    return sample_context_frames(n, c, rng, mode="contiguous")


def sampler_any_start(n, c, rng):  # chunks at any frame: not aligned to the VAE's 4-frame latents
    return _chunks(np.sort(rng.choice(np.arange(1, n - 4), size=c, replace=False)))


def sampler_off_by_one(n, c, rng):  # never draws the last chunk of the scan
    return _chunks(4 * np.sort(rng.choice(np.arange(1, n_chunk_slots(n)), size=c, replace=False)))


def sampler_with_replacement(n, c, rng):  # the same chunk can come twice
    return _chunks(4 * np.sort(rng.integers(1, n_chunk_slots(n) + 1, size=c)))


def sampler_no_first_frame(n, c, rng):
    return sampler_reference(n, c, rng)[1:] + [n - 1]


def sampler_global_rng(n, c, rng):  # ignores the rng it is given
    return sampler_reference(n, c, np.random.default_rng())


def test_context_sampler_checker(capsys):
    assert check_context_sampler("sampler", sampler_reference, None)
    assert check_context_sampler("sampler", _stub_any, sampler_reference)
    for wrong, why in ((sampler_contiguous, "contiguous"), (sampler_any_start, "multiple of 4"),
                       (sampler_off_by_one, "never came up"), (sampler_with_replacement, "strictly increasing"),
                       (sampler_no_first_frame, "scan frame 0"), (sampler_global_rng, "same seed")):
        capsys.readouterr()
        assert not check_context_sampler("sampler", wrong, sampler_reference), wrong.__name__
        assert why in capsys.readouterr().out, wrong.__name__


def positions_reference(idx, n_target, gap):
    ctx = [idx[0] // 4] + [idx[i] // 4 for i in range(1, len(idx), 4)]
    return ctx + [ctx[-1] + gap + j for j in range(n_target)]


def positions_enumerated(idx, n_target, gap):  # numbers the chunks 0, 1, 2, ...: hides how far apart they are
    n_ctx = 1 + (len(idx) - 1) // 4
    return list(range(n_ctx)) + [n_ctx - 1 + gap + j for j in range(n_target)]


def positions_frame_index(idx, n_target, gap):  # the frame index itself, not the latent index
    ctx = [idx[0]] + [idx[i] for i in range(1, len(idx), 4)]
    return ctx + [ctx[-1] + gap + j for j in range(n_target)]


def positions_no_gap(idx, n_target, gap):  # ignores the gap argument
    return positions_reference(idx, n_target, 1)


def positions_one_based(idx, n_target, gap):  # counts the chunk after frame 0 as one more latent
    ctx = [0] + [idx[i] // 4 + 1 for i in range(1, len(idx), 4)]
    return ctx + [ctx[-1] + gap + j for j in range(n_target)]


def test_rope_positions_checker(capsys):
    assert check_rope_positions("positions", positions_reference, None)
    assert check_rope_positions("positions", _stub_any, positions_reference)
    for wrong in (positions_enumerated, positions_frame_index, positions_no_gap, positions_one_based):
        assert not check_rope_positions("positions", wrong, positions_reference), wrong.__name__
    assert "expected" in capsys.readouterr().out


def dropout_reference(text, ctx, null, u, noise, p_text, p_context, p_both):
    both = u < p_both
    text_only = (u >= p_both) & (u < p_both + p_text)
    ctx_only = (u >= p_both + p_text) & (u < p_both + p_text + p_context)
    td, cd = (both | text_only).view(-1, 1, 1), (both | ctx_only).view(-1, *[1] * (ctx.ndim - 1))
    return torch.where(td, null.expand_as(text), text), torch.where(cd, noise, ctx)


def dropout_independent(text, ctx, null, u, noise, p_text, p_context, p_both):  # two independent events
    td, cd = (u < p_text + p_both).view(-1, 1, 1), (u < p_context + p_both).view(-1, *[1] * (ctx.ndim - 1))
    return torch.where(td, null.expand_as(text), text), torch.where(cd, noise, ctx)


def dropout_zeros(text, ctx, null, u, noise, p_text, p_context, p_both):  # context "dropped" to zeros
    t, c = dropout_reference(text, ctx, null, u, noise, p_text, p_context, p_both)
    return t, torch.where(c == noise, torch.zeros_like(c), c)


def dropout_zero_text(text, ctx, null, u, noise, p_text, p_context, p_both):  # text zeroed, not the null prompt
    t, c = dropout_reference(text, ctx, null, u, noise, p_text, p_context, p_both)
    return torch.where(t == null.expand_as(text), torch.zeros_like(t), t), c


def dropout_whole_batch(text, ctx, null, u, noise, p_text, p_context, p_both):  # one draw for the whole batch
    return dropout_reference(text, ctx, null, u[:1].expand_as(u), noise, p_text, p_context, p_both)


def dropout_in_place(text, ctx, null, u, noise, p_text, p_context, p_both):  # right values, inputs overwritten
    t, c = dropout_reference(text, ctx, null, u, noise, p_text, p_context, p_both)
    text.copy_(t), ctx.copy_(c)
    return text, ctx


def test_condition_dropout_checker(capsys):
    assert check_condition_dropout("dropout", dropout_reference, None)
    assert check_condition_dropout("dropout", _stub_any, dropout_reference)
    for wrong in (dropout_independent, dropout_zeros, dropout_zero_text, dropout_whole_batch, dropout_in_place):
        assert not check_condition_dropout("dropout", wrong, dropout_reference), wrong.__name__
    out = capsys.readouterr().out
    assert "✗ dropout" in out and "samples differ" in out


def test_checkers_report_a_crashing_answer(capsys):
    def crashes(*args):
        raise ValueError("boom")
    assert not check_context_sampler("sampler", crashes, sampler_reference)
    assert not check_rope_positions("positions", crashes, positions_reference)
    assert not check_condition_dropout("dropout", crashes, dropout_reference)
    assert capsys.readouterr().out.count("raised ValueError: boom") == 3

"""ContextRoPE against diffusers' WanRotaryPosEmbed, and the properties non-contiguous positions rely on."""
import pytest
import torch
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

from v4s_lite.rope import ContextRoPE, context_positions, sequence_positions, target_positions
from v4s_lite.utils import V4SError


def rotate(x, cos, sin):
    """The rotation diffusers' WanAttnProcessor applies (pairs of dims, interleaved)."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos[..., 0::2] - x2 * sin[..., 1::2]
    out[..., 1::2] = x1 * sin[..., 1::2] + x2 * cos[..., 0::2]
    return out


@pytest.mark.parametrize("head_dim", [12, 48, 128])
def test_contiguous_positions_equal_diffusers_exactly(head_dim):
    ref = WanRotaryPosEmbed(head_dim, (1, 2, 2), 1024)
    ours = ContextRoPE.from_rope(ref)
    x = torch.zeros(2, 4, 7, 8, 26)
    want = ref(x)
    for positions in (None, list(range(7))):
        ours.set_positions(positions)
        got = ours(x)
        assert all(torch.equal(g, w) for g, w in zip(got, want))
    assert (ours.t_dim, ours.h_dim, ours.w_dim) == (ref.t_dim, ref.h_dim, ref.w_dim)


def test_split_of_head_dims_for_wan_5b():
    rope = ContextRoPE(128, (1, 2, 2))
    assert (rope.t_dim, rope.h_dim, rope.w_dim) == (44, 42, 42)


def test_attention_logits_unchanged_by_a_common_shift():
    rope = ContextRoPE(48, (1, 2, 2))
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(1, 4, 5, 4, 6)
    q = torch.randn(1, 5 * 2 * 3, 1, 48, generator=g, dtype=torch.float64)
    k = torch.randn(1, 5 * 2 * 3, 1, 48, generator=g, dtype=torch.float64)
    logits = []
    for offset in (0, 17, 300):
        rope.set_positions([p + offset for p in [0, 3, 4, 9, 10]])
        cos, sin = rope(x)
        qr, kr = rotate(q, cos, sin), rotate(k, cos, sin)
        logits.append(torch.einsum("bihd,bjhd->bhij", qr, kr))
    # diffusers stores the tables as float32 (computed in float64): equal up to float32 rounding.
    torch.testing.assert_close(logits[1], logits[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(logits[2], logits[0], rtol=0, atol=1e-5)
    # ...but moving one frame relative to the others changes them: positions are really used.
    rope.set_positions([0, 3, 4, 9, 11])
    cos, sin = rope(x)
    moved = torch.einsum("bihd,bjhd->bhij", rotate(q, cos, sin), rotate(k, cos, sin))
    assert (moved - logits[0]).abs().max() > 1e-3


def test_per_sample_positions_match_shared_ones():
    rope = ContextRoPE(12, (1, 2, 2))
    x = torch.zeros(2, 4, 3, 4, 4)
    rope.set_positions([[0, 2, 5], [1, 7, 8]])
    cos, sin = rope(x)
    for b, row in enumerate([[0, 2, 5], [1, 7, 8]]):
        rope.set_positions(row)
        c1, s1 = rope(x[:1])
        assert torch.equal(cos[b:b + 1], c1) and torch.equal(sin[b:b + 1], s1)


def test_clear_error_past_the_table_and_a_longer_table():
    rope = ContextRoPE(12, (1, 2, 2))
    with pytest.raises(V4SError, match="table of 1024"):
        rope.set_positions([0, 1023, 1024])
    with pytest.raises(V4SError):
        rope.set_positions([-1, 0])
    longer = ContextRoPE.from_rope(rope, max_seq_len=2048)
    longer.set_positions([0, 1500])
    cos, _ = longer(torch.zeros(1, 4, 2, 2, 2))
    assert cos.shape == (1, 2, 1, 12)
    # The first 1024 rows of the longer table are the same numbers as the default table.
    assert torch.equal(longer.freqs_cos[:1024], rope.freqs_cos)
    rope.set_positions([0, 1])
    with pytest.raises(V4SError, match="latent frames"):
        rope(torch.zeros(1, 4, 3, 2, 2))


def test_context_positions_from_frame_indices():
    idx = [0, 4, 5, 6, 7, 12, 13, 14, 15, 40, 41, 42, 43]
    assert context_positions(idx) == [0, 1, 3, 10]
    contiguous = [0] + list(range(4, 16))
    assert context_positions([idx, contiguous]) == [[0, 1, 3, 10], [0, 1, 2, 3]]  # (B, Fc): one list per sample
    with pytest.raises(V4SError, match="1 \\+ 4k"):
        context_positions([0, 4, 5, 6])
    with pytest.raises(V4SError, match="consecutive"):
        context_positions([0, 4, 5, 7, 8])
    with pytest.raises(V4SError, match="time order"):
        context_positions([0, 8, 9, 10, 11, 4, 5, 6, 7])


def test_target_positions_continue_after_the_context():
    assert target_positions(10, 3, gap=1) == [11, 12, 13]
    assert target_positions(10, 2, gap=5) == [15, 16]
    assert sequence_positions([0, 1, 3, 10], 2) == [0, 1, 3, 10, 11, 12]
    assert sequence_positions([], 3) == [0, 1, 2]
    with pytest.raises(V4SError):
        target_positions(3, 2, gap=0)


def test_after_scan_rule_keeps_the_target_where_training_put_it():
    """The "after_scan" rule (rope.py): the target starts after the scan's last chunk slot however many chunks
    were drawn, so a context-length change moves nothing but the context; a context reaching past that start
    still pushes the target after it."""
    from v4s_lite.config import LITE
    from v4s_lite.model import V4SModel, build_model
    from v4s_lite.config import TrainConfig
    from v4s_lite.rope import target_start_after_scan

    start = target_start_after_scan(LITE.scan_frames)
    assert start == 32  # 129 frames: chunk slots 1..31, then the gap
    assert sequence_positions([0, 3, 31], 2, target_start=start)[-2:] == [32, 33]
    assert sequence_positions([0, 3], 2, target_start=start)[-2:] == [32, 33]  # fewer chunks: same target
    assert sequence_positions([], 2, target_start=start) == [32, 33]  # no context at all: same target
    assert sequence_positions([0, 40], 2, target_start=start)[-2:] == [41, 42]  # a longer scan: after its end
    assert sequence_positions([0, 3], 2)[-2:] == [4, 5]  # "after_context" (the default): after the last chunk
    m = build_model(TrainConfig(model="tiny", clip="lite", rope_target="after_scan"))
    assert m.rope_target_start == 32 and m.positions([0, 5], 2).tolist() == [0, 5, 32, 33, 34]
    assert build_model(TrainConfig(model="tiny", clip="lite")).rope_target_start is None
    with pytest.raises(V4SError, match="rope_target"):
        TrainConfig(rope_target="after_everything")


@pytest.mark.parametrize("rule", ["after_context", "after_scan"])
def test_model_positions_equal_sequence_positions_per_row(rule):
    """V4SModel.positions builds every row's sequence in tensor ops (rope.sequence_positions_batch: positions
    resident on a GPU never go to the host): equal to rope.sequence_positions row by row, for per-sample rows, a shared row and no context; the
    rows' device is kept; check_positions refuses a clip whose sequence leaves the RoPE table."""
    from v4s_lite.config import TrainConfig
    from v4s_lite.model import build_model

    m = build_model(TrainConfig(model="tiny", clip="lite", rope_target=rule))
    g = torch.Generator().manual_seed(0)
    rows = torch.sort(torch.randint(0, 60, (6, 4), generator=g), dim=1).values  # some past the after-scan start
    got = m.positions(rows, 3)
    want = [sequence_positions(r.tolist(), 4, m.rope_gap, m.rope_target_start) for r in rows]
    assert got.tolist() == want and got.dtype == torch.long
    assert m.positions(rows[0], 3).tolist() == want[0]
    assert m.positions(None, 3).tolist() == sequence_positions([], 4, m.rope_gap, m.rope_target_start)
    assert m.positions(torch.zeros(2, 0, dtype=torch.long), 3).tolist() == [
        sequence_positions([], 4, m.rope_gap, m.rope_target_start)] * 2
    assert m.positions(rows.to("meta"), 3).device.type == "meta"  # stays where the rows are (a GPU in training)
    m.check_positions(rows, 3)
    with pytest.raises(V4SError, match="outside the"):
        m.check_positions(rows + m.transformer.rope.max_seq_len, 3)

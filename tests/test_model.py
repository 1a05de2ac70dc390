"""V4SModel: the sequence, per-token timesteps and RoPE positions, against the stock diffusers transformer."""
import copy

import pytest
import torch
from diffusers import WanTransformer3DModel

from v4s_lite.model import TokenLayout, V4SModel, transformer_config
from v4s_lite.utils import V4SError

B, C, H, W = 2, 12, 4, 6  # latent size: 2 x 3 = 6 tokens per frame with the (1, 2, 2) patch


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return V4SModel.from_preset("tiny").eval()


def inputs(n_context=3, n_noisy=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)
    return dict(context_latents=r(B, C, n_context, H, W), first_latent=r(B, C, 1, H, W),
                noisy_latents=r(B, C, n_noisy, H, W), t=torch.tensor([700.0, 250.0]), text_emb=r(B, 32, 64))


def stock_forward(model, x, timestep, text):
    """The unmodified diffusers transformer (its own WanRotaryPosEmbed, positions 0..F-1)."""
    stock = WanTransformer3DModel(**dict(model.config))
    stock.load_state_dict(model.transformer.state_dict())
    with torch.no_grad():
        return stock.eval()(x, timestep, text, return_dict=False)[0]


def test_contiguous_layout_equals_stock_transformer_with_per_token_timesteps(model):
    a = inputs()
    with torch.no_grad():
        got = model(**a, context_positions=[0, 1, 2])  # gap 1: positions 0..5, exactly diffusers' own
    x = torch.cat([a["context_latents"], a["first_latent"], a["noisy_latents"]], dim=2)
    timestep = torch.cat([torch.zeros(B, 4 * 6), a["t"][:, None].expand(B, 2 * 6)], dim=1)
    want = stock_forward(model, x, timestep, a["text_emb"])[:, :, 4:]
    assert got.shape == a["noisy_latents"].shape
    assert torch.equal(got, want)


def test_clean_tokens_carry_t_zero_and_noisy_tokens_t():
    layout = TokenLayout(n_context=3, n_noisy=2, tokens_per_frame=6)
    ts = layout.timesteps(torch.tensor([700.0, 250.0]))
    assert ts.shape == (2, 36)
    assert (ts[:, :24] == 0).all() and (ts[0, 24:] == 700).all() and (ts[1, 24:] == 250).all()
    assert layout.loss_mask.sum() == 12 and not layout.loss_mask[:24].any()
    assert layout.frame_roles == ["context"] * 3 + ["first", "noisy", "noisy"]


def test_context_conditions_the_prediction_and_positions_matter(model):
    a = inputs()
    with torch.no_grad():
        base = model(**a, context_positions=[0, 1, 2])
        other_ctx = model(**{**a, "context_latents": torch.randn_like(a["context_latents"])}, context_positions=[0, 1, 2])
        spread = model(**a, context_positions=[0, 5, 9])
        shifted = model(**a, context_positions=[0, 1, 2], target_positions=[3, 4, 5])
        all_shifted = model(**a, context_positions=[40, 41, 42], target_positions=[43, 44, 45])
    assert (base - other_ctx).abs().max() > 1e-3  # the clean context is really attended to
    assert (base - spread).abs().max() > 1e-4  # non-contiguous positions change the prediction
    assert torch.equal(base, shifted)  # explicit target positions = the default continuation
    torch.testing.assert_close(all_shifted, base, rtol=0, atol=1e-4)  # RoPE is relative: a common shift is a no-op


def test_per_sample_positions_equal_separate_forwards(model):
    a = inputs()
    rows = [[0, 2, 7], [0, 1, 3]]
    with torch.no_grad():
        both = model(**a, context_positions=torch.tensor(rows))
        for b in range(B):
            one = model(**{k: v[b:b + 1] for k, v in a.items()}, context_positions=rows[b])
            torch.testing.assert_close(both[b:b + 1], one, rtol=0, atol=1e-5)


def test_no_context_first_frame_only(model):
    a = inputs()
    with torch.no_grad():
        out = model(None, a["first_latent"], a["noisy_latents"], a["t"], a["text_emb"], None)
    assert out.shape == a["noisy_latents"].shape


def test_loss_gradient_reaches_only_through_noisy_outputs(model):
    a = inputs()
    m = copy.deepcopy(model).train()
    ctx = a["context_latents"].clone().requires_grad_(True)
    out = m(**{**a, "context_latents": ctx}, context_positions=[0, 1, 2])
    out.pow(2).mean().backward()
    assert ctx.grad.abs().sum() > 0 and m.transformer.proj_out.weight.grad is not None


def test_bad_inputs_raise_clear_errors(model):
    a = inputs()
    with pytest.raises(V4SError, match="context positions"):
        model(**a, context_positions=[0, 1])
    with pytest.raises(V4SError, match="channels"):
        model(**{k: (v[:, :4] if v.ndim == 5 else v) for k, v in a.items()}, context_positions=[0, 1, 2])
    with pytest.raises(V4SError, match="first_latent"):
        model(**{**a, "first_latent": a["noisy_latents"]}, context_positions=[0, 1, 2])
    with pytest.raises(V4SError, match="unknown transformer preset"):
        transformer_config("huge")


def test_save_and_load_with_diffusers_own_from_pretrained(model, tmp_path):
    m = V4SModel(copy.deepcopy(model.transformer), rope_gap=3, rope_max_seq_len=2048)
    m.save_pretrained(tmp_path)
    plain = WanTransformer3DModel.from_pretrained(tmp_path)
    assert plain.config.rope_max_seq_len == 2048
    for k, v in m.transformer.state_dict().items():
        assert torch.equal(plain.state_dict()[k], v)
    back = V4SModel.from_pretrained(tmp_path)
    assert back.rope_gap == 3 and back.transformer.rope.max_seq_len == 2048
    a = inputs()
    with torch.no_grad():
        torch.testing.assert_close(back.eval()(**a, context_positions=[0, 1, 1500]),
                                   m.eval()(**a, context_positions=[0, 1, 1500]), rtol=0, atol=0)


def test_wan_5b_preset_is_the_published_shape():
    from accelerate import init_empty_weights

    cfg = transformer_config("wan2.2-ti2v-5b")
    with init_empty_weights():
        m = V4SModel(WanTransformer3DModel(**cfg))
    n = sum(p.numel() for p in m.parameters())
    assert 4.9e9 < n < 5.1e9, n  # "5B"
    assert m.config.num_attention_heads * m.config.attention_head_dim == 3072
    rope = m.transformer.rope
    assert (rope.t_dim, rope.h_dim, rope.w_dim) == (44, 42, 42)


# ------------------------------------------------------------------ context-only attention (issue 6's lever)
def _context_hidden(m, ctx, first, noisy, t, text, pos):
    """The last block's output on the context tokens (what reuse would cache)."""
    seen = {}
    h = m.transformer.blocks[-1].register_forward_hook(lambda mod, a, out: seen.update(out=out))
    with torch.no_grad():
        m(ctx, first, noisy, t, text, context_positions=pos)
    h.remove()
    n = ctx.shape[2] * m.layout(ctx.shape[2], noisy.shape[2], ctx.shape[3], ctx.shape[4]).tokens_per_frame
    return seen["out"][:, :n]


def test_context_only_attention_makes_context_independent_of_the_target(model):
    d = inputs()
    ctx, first, noisy, t, text = (d[k] for k in ("context_latents", "first_latent", "noisy_latents", "t", "text_emb"))
    pos = [0, 4, 8]
    other_noisy, other_first = torch.randn_like(noisy), torch.randn_like(first)
    masked = copy.deepcopy(model)
    masked.context_attention = "context_only"
    a = _context_hidden(masked, ctx, first, noisy, t, text, pos)
    b = _context_hidden(masked, ctx, other_first, other_noisy, 700.0, text, pos)
    assert torch.equal(a, b)  # nothing of the target reaches the context: its k/v can be computed once
    # the paper's full attention mixes the target into the context tokens
    assert not torch.allclose(_context_hidden(model, ctx, first, noisy, t, text, pos),
                              _context_hidden(model, ctx, other_first, other_noisy, 700.0, text, pos))
    # and the target still sees the context: a different context changes the prediction
    with torch.no_grad():
        p1 = masked(ctx, first, noisy, t, text, context_positions=pos)
        p2 = masked(torch.randn_like(ctx), first, noisy, t, text, context_positions=pos)
        p_full = model(ctx, first, noisy, t, text, context_positions=pos)
    assert not torch.allclose(p1, p2) and not torch.allclose(p1, p_full)


def test_context_only_attention_is_saved_and_checked(model, tmp_path):
    m = copy.deepcopy(model)
    m.context_attention = "context_only"
    m.save_pretrained(tmp_path / "m")
    assert V4SModel.from_pretrained(tmp_path / "m").context_attention == "context_only"
    model.save_pretrained(tmp_path / "full")
    assert V4SModel.from_pretrained(tmp_path / "full").context_attention == "full"
    with pytest.raises(V4SError, match="context_attention"):
        V4SModel(m.transformer, context_attention="causal")


@pytest.mark.parametrize("n_context,n_noisy,tpf", [(0, 3, 4), (2, 5, 12), (9, 6, 104)])
def test_timesteps_are_t_on_the_noisy_tokens_exactly(n_context, n_noisy, tpf):
    """TokenLayout.timesteps builds its mask where t lives (no host copy in the training step): it must equal
    t on the tokens of the "noisy" frames (frame_roles) and 0 elsewhere, for any layout; so must loss_mask."""
    layout = TokenLayout(n_context, n_noisy, tpf)
    t = torch.tensor([700.0, 250.0, 1.0])
    noisy = torch.tensor([r == "noisy" for r in layout.frame_roles]).repeat_interleave(tpf)
    assert torch.equal(layout.loss_mask, noisy)
    expected = noisy[None].float() * t[:, None]
    assert torch.equal(layout.timesteps(t), expected)
    assert layout.timesteps(t).shape == (3, layout.n_tokens)


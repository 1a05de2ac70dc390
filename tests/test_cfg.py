"""Joint classifier-free guidance: batched passes, the formulas, and the training-time dropout rates."""
import pytest
import torch

from v4s_lite.cfg import drop_conditions, joint_cfg
from v4s_lite.model import V4SModel
from v4s_lite.utils import V4SError

B, C, H, W = 2, 12, 4, 6


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(1)
    model = V4SModel.from_preset("tiny").eval()
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)
    kw = dict(context_latents=r(B, C, 3, H, W), first_latent=r(B, C, 1, H, W), text_emb=r(B, 32, 64),
              null_text_emb=torch.zeros(1, 32, 64), context_positions=[0, 2, 5])
    return model, r(B, C, 2, H, W), torch.tensor([600.0, 600.0]), kw, r(B, C, 3, H, W)


def single(model, x, t, kw, text, ctx):
    with torch.no_grad():
        return model(ctx, kw["first_latent"], x, t, text, kw["context_positions"])


def test_mode_none_is_one_plain_forward(setup):
    model, x, t, kw, _ = setup
    with torch.no_grad():
        got = joint_cfg(model, x, t, mode="none", **kw)
    assert torch.equal(got, single(model, x, t, kw, kw["text_emb"], kw["context_latents"]))


def test_batched_passes_equal_one_at_a_time_and_the_paper_formula(setup):
    model, x, t, kw, z = setup
    null = kw["null_text_emb"].expand(B, -1, -1)
    cond = single(model, x, t, kw, kw["text_emb"], kw["context_latents"])
    null_noise = single(model, x, t, kw, null, z)
    null_ctx = single(model, x, t, kw, null, kw["context_latents"])
    with torch.no_grad():
        joint = joint_cfg(model, x, t, mode="joint", scale=4.0, noise_context=z, **kw)
        joint1 = joint_cfg(model, x, t, mode="joint", scale=1.0, noise_context=z, **kw)
        text = joint_cfg(model, x, t, mode="text", scale=4.0, **kw)
        three = joint_cfg(model, x, t, mode="three", scale=4.0, text_scale=3.0, context_scale=6.0,
                          noise_context=z, **kw)
    torch.testing.assert_close(joint, null_noise + 4.0 * (cond - null_noise), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(joint1, cond, rtol=1e-5, atol=1e-5)  # scale 1: the conditional pass
    torch.testing.assert_close(text, null_ctx + 4.0 * (cond - null_ctx), rtol=1e-4, atol=1e-4)
    want = null_noise + 6.0 * (null_ctx - null_noise) + 3.0 * (cond - null_ctx)
    torch.testing.assert_close(three, want, rtol=1e-4, atol=1e-4)
    assert (joint - text).abs().max() > 1e-3  # the context branch changes the guidance


def test_per_sample_positions_are_repeated_for_every_pass(setup):
    model, x, t, kw, z = setup
    rows = torch.tensor([[0, 2, 5], [0, 4, 9]])
    with torch.no_grad():
        got = joint_cfg(model, x, t, mode="joint", scale=3.0, noise_context=z, **{**kw, "context_positions": rows})
        for b in range(B):
            one = {k: (v[b:b + 1] if k != "null_text_emb" else v) for k, v in kw.items() if k != "context_positions"}
            want = joint_cfg(model, x[b:b + 1], t[b:b + 1], mode="joint", scale=3.0, noise_context=z[b:b + 1],
                             context_positions=rows[b].tolist(), **one)
            torch.testing.assert_close(got[b:b + 1], want, rtol=1e-4, atol=1e-4)


def test_noise_context_is_reproducible_from_a_generator(setup):
    model, x, t, kw, _ = setup
    with torch.no_grad():
        a = joint_cfg(model, x, t, mode="joint", generator=torch.Generator().manual_seed(5), **kw)
        b = joint_cfg(model, x, t, mode="joint", generator=torch.Generator().manual_seed(5), **kw)
    assert torch.equal(a, b)


def test_bad_modes_and_scales(setup):
    model, x, t, kw, _ = setup
    with pytest.raises(V4SError, match="unknown guidance mode"):
        joint_cfg(model, x, t, mode="both", **kw)
    with pytest.raises(V4SError, match="three"):
        joint_cfg(model, x, t, mode="joint", text_scale=2.0, **kw)


def test_dropout_rates_are_realised_and_context_becomes_noise():
    n = 20000
    text = torch.ones(n, 2, 3)
    ctx = torch.full((n, 4, 1, 2, 2), 7.0)
    null = torch.zeros(1, 2, 3)
    out = drop_conditions(text, ctx, null, p_text=0.1, p_context=0.2, p_both=0.05,
                          generator=torch.Generator().manual_seed(0))
    only_text = (out.text_dropped & ~out.context_dropped).float().mean()
    only_ctx = (~out.text_dropped & out.context_dropped).float().mean()
    both = (out.text_dropped & out.context_dropped).float().mean()
    se = (0.25 / n) ** 0.5  # binomial standard error bound
    for got, p in ((only_text, 0.1), (only_ctx, 0.2), (both, 0.05)):
        assert abs(float(got) - p) < 4 * se
    # dropped rows: null text / standard Gaussian context; kept rows untouched
    assert (out.text_emb[out.text_dropped] == 0).all() and (out.text_emb[~out.text_dropped] == 1).all()
    assert (out.context_latents[~out.context_dropped] == 7).all()
    noise = out.context_latents[out.context_dropped]
    assert abs(float(noise.mean())) < 0.05 and abs(float(noise.std()) - 1) < 0.05
    again = drop_conditions(text, ctx, null, 0.1, 0.2, 0.05, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.context_latents, out.context_latents)
    with pytest.raises(V4SError, match="exclusive"):
        drop_conditions(text, ctx, null, 0.5, 0.5, 0.5)

"""AttentionCapture: where the generated frames look (notebook 06), checked against attention we can predict."""
import copy

import pytest
import torch

from v4s_lite.attention import AttentionCapture, AttentionCaptureProcessor, attention_share
from v4s_lite.utils import V4SError

from test_model import B, C, H, W, model  # noqa: F401  (model: the tiny preset, a module fixture)
from test_model import inputs as model_inputs


def inputs(n_context=3, n_noisy=2, seed=0):
    """test_model's inputs with explicit context positions (chunks 4 scan frames apart)."""
    return dict(model_inputs(n_context, n_noisy, seed), context_positions=[0, 4, 8])


def test_capture_leaves_the_output_unchanged_and_restores_the_processors(model):
    a = inputs()
    before = [b.attn1.processor for b in model.transformer.blocks]
    with torch.no_grad():
        want = model(**a)
        with AttentionCapture(model) as cap:
            assert all(isinstance(b.attn1.processor, AttentionCaptureProcessor) for b in model.transformer.blocks)
            got = model(**a)
    assert torch.equal(got, want)
    assert [b.attn1.processor for b in model.transformer.blocks] == before
    assert len(cap.records) == len(model.transformer.blocks)  # one record per layer and forward
    mass = cap.layer_mass()
    assert mass.shape == (2, 6)  # layers x latent frames (3 context + first + 2 noisy)
    torch.testing.assert_close(mass.sum(-1), torch.ones(2))


def test_queries_with_no_content_spread_their_attention_evenly(model):
    # q = 0 makes every logit 0: the softmax is uniform, so each of the 6 frames gets exactly 1/6
    m = copy.deepcopy(model)
    for blk in m.transformer.blocks:
        torch.nn.init.zeros_(blk.attn1.to_q.weight)
        torch.nn.init.zeros_(blk.attn1.to_q.bias)
    with torch.no_grad(), AttentionCapture(m) as cap:
        m(**inputs())
    torch.testing.assert_close(cap.frame_mass(), torch.full((6,), 1 / 6))


def test_a_frame_whose_keys_match_the_queries_takes_the_attention(model):
    # make one layer's keys a copy of its queries' projection, sharpened: each query then looks at
    # tokens like itself, and the last frame's queries match their own frame best (the same inputs)
    m = copy.deepcopy(model)
    attn = m.transformer.blocks[0].attn1
    with torch.no_grad():
        attn.to_k.weight.copy_(attn.to_q.weight)
        attn.to_k.bias.copy_(attn.to_q.bias)
        attn.norm_k.weight.copy_(attn.norm_q.weight * 4)  # sharper: the RMS norm undoes a scaled projection
    a = inputs()
    a["noisy_latents"] = torch.randn(B, C, 2, H, W) * 5  # the last frame unlike the others
    with torch.no_grad(), AttentionCapture(m, query_frames=[-1]) as cap:
        m(**a)
    first_layer = cap.layer_mass()[0]
    assert int(first_layer.argmax()) == 5 and first_layer[5] > 0.5


def test_batch_selection_and_the_joint_cfg_passes(model):
    a = inputs()
    a["context_latents"][1] = torch.randn_like(a["context_latents"][1]) * 4  # the second sample differs
    with torch.no_grad(), AttentionCapture(model) as cap:
        model(**a)
    first, second, both = cap.frame_mass(batch=0), cap.frame_mass(batch=1), cap.frame_mass()
    assert not torch.allclose(first, second)
    torch.testing.assert_close(both, (first + second) / 2)


def test_context_only_model_is_captured_through_its_mask(model):
    m = copy.deepcopy(model)
    m.context_attention = "context_only"
    a = inputs()
    with torch.no_grad():
        want = m(**a)
        with AttentionCapture(m, query_frames=[0]) as cap:  # a context frame: it sees only the context
            got = m(**a)
    assert torch.equal(got, want)
    mass = cap.frame_mass()
    assert mass[3:].abs().max() < 1e-6 and abs(float(mass[:3].sum()) - 1) < 1e-5


def test_nothing_recorded_and_unknown_layout_are_errors(model):
    with AttentionCapture(model) as cap:
        pass
    with pytest.raises(V4SError, match="recorded nothing"):
        cap.frame_mass()
    with AttentionCapture(model.transformer) as cap, torch.no_grad():  # a bare transformer: no layout to read
        with pytest.raises(V4SError, match="tokens per latent frame"):
            model.transformer(torch.randn(1, C, 2, H, W), torch.zeros(1), torch.randn(1, 4, 64), return_dict=False)


def test_attention_share_against_chance():
    share, chance = attention_share([0.1, 0.5, 0.2, 0.2], [False, True, False, False])
    assert share == pytest.approx(0.5) and chance == pytest.approx(0.25)
    share, chance = attention_share(torch.tensor([1.0, 1.0]), [True, True])
    assert share != share and chance != chance  # NaN: every frame shows it, nothing to tell apart
    with pytest.raises(V4SError):
        attention_share([1.0, 2.0], [True])


def test_context_chunk_frames_splits_the_scan_frame_and_the_chunks():
    from v4s_lite.sample import context_chunk_frames

    chunks = context_chunk_frames([0, 10, 11, 12, 13, 40, 41, 42, 43])
    assert [c.tolist() for c in chunks] == [[0], [10, 11, 12, 13], [40, 41, 42, 43]]
    with pytest.raises(V4SError, match="1 \\+ 4k"):
        context_chunk_frames([0, 10, 11, 12])


def _item(n_context=3, n_target=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(context_latents=torch.randn(C, n_context, H, W, generator=g),
                target_latents=torch.randn(C, n_target, H, W, generator=g),
                prompt_embeds=torch.randn(32, 64, generator=g), context_positions=torch.tensor([0, 4, 8]))


def test_where_it_looks_reports_the_context_shares_of_the_last_frame(model):
    from v4s_lite.sample import where_it_looks

    item, null = _item(), torch.zeros(32, 64)
    shares, context = where_it_looks(model, item, null, steps=2, scheduler="euler")
    assert shares.shape == (3,) and abs(shares.sum() - 1) < 1e-5 and 0 < context < 1
    # queries with no content look everywhere alike: 3 context frames of 6 (+ first + 2 noisy) get exactly half
    m = copy.deepcopy(model)
    for blk in m.transformer.blocks:
        torch.nn.init.zeros_(blk.attn1.to_q.weight)
        torch.nn.init.zeros_(blk.attn1.to_q.bias)
    shares, context = where_it_looks(m, item, null, steps=2, scheduler="euler")
    assert context == pytest.approx(0.5, abs=1e-5) and shares == pytest.approx([1 / 3] * 3, abs=1e-5)
    # the model is left as it was: its processors restored, its output unchanged
    assert not any(isinstance(b.attn1.processor, AttentionCaptureProcessor) for b in model.transformer.blocks)

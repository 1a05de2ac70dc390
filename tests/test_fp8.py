"""FP8 matmuls for the frozen LoRA base (v4s_lite.fp8), on the CPU (torch._scaled_mm runs there, slowly)."""
import dataclasses

import pytest
import torch
from diffusers import WanTransformer3DModel
from torch import nn

from v4s_lite.config import WAN_LORA_TARGETS, load_config
from v4s_lite.fp8 import FP8Linear, fp8_base, fp8_supported, restore_base
from v4s_lite.full import tiny_wan22_config
from v4s_lite.utils import V4SError

from test_full import ROOT


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def frozen_linear(k=64, n=48, seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    lin = nn.Linear(k, n).to(dtype)
    return lin.requires_grad_(False)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fp8_linear_matches_the_product_and_its_input_gradient(dtype):
    lin = frozen_linear(dtype=dtype)
    f = FP8Linear(lin)
    x = torch.randn(3, 37, 64, dtype=dtype, requires_grad=True)  # 111 tokens: not a multiple of 16 (padded)
    y = f(x)
    ref = lin(x)
    assert y.shape == ref.shape and y.dtype == ref.dtype
    assert 1e-3 < rel(y, ref) < 0.06  # quantized (not the bf16 product itself), within the e4m3 mantissa's error
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    (gref,) = torch.autograd.grad(ref, x, g)
    assert 1e-3 < rel(gx, gref) < 0.06
    assert list(f.parameters()) == [] and f.w_q.dtype == torch.float8_e4m3fn  # nothing for an optimizer to see
    # one byte per weight (+ a float32 scale per output row): half a bf16 weight's memory
    assert sum(b.numel() * b.element_size() for n, b in f.named_buffers() if n != "bias") == 64 * 48 + 4 * 48
    w_q, w_scale = f.w_q.clone(), f.w_scale.clone()
    f.to(torch.bfloat16)  # .to(dtype) keeps FP8 as FP8 and the scales in float32, bit for bit
    assert f.w_q.dtype == torch.float8_e4m3fn and f.w_scale.dtype == torch.float32
    assert torch.equal(f.w_q.float(), w_q.float()) and torch.equal(f.w_scale, w_scale)


def test_rowwise_scales_keep_an_outlier_token_from_ruining_the_others():
    """One token 100,000x larger than the rest: a single per-tensor scale would flush the others into e4m3's
    subnormals (their error ~100%); one scale per token keeps their error at the mantissa's."""
    lin = frozen_linear()
    f = FP8Linear(lin)
    x = torch.randn(32, 64)
    x[0] *= 1e5
    y, ref = f(x), lin(x)
    assert rel(y[1:], ref[1:]) < 0.06 and rel(y[:1], ref[:1]) < 0.06


def test_fp8_linear_refuses_trainable_or_misshapen_weights():
    with pytest.raises(V4SError, match="frozen"):
        FP8Linear(nn.Linear(64, 48))
    with pytest.raises(V4SError, match="divisible by 16"):
        FP8Linear(nn.Linear(24, 48).requires_grad_(False))


def lora_transformer(seed=0):
    """A Wan2.2-shaped transformer whose widths are multiples of 16 (FP8's rule), with the course's adapter."""
    from peft import LoraConfig

    torch.manual_seed(seed)
    t = WanTransformer3DModel(**{**tiny_wan22_config(2), "attention_head_dim": 16, "ffn_dim": 64})
    t.requires_grad_(False)
    t.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=list(WAN_LORA_TARGETS), init_lora_weights=False))
    for n, p in t.named_parameters():
        p.requires_grad_("lora_" in n)
    return t


def test_fp8_base_swaps_every_lora_base_keeps_the_adapter_trainable_and_restores():
    t = lora_transformer()
    x = torch.randn(1, 48, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    ts, emb = torch.full((1,), 500.0), torch.randn(1, 5, 32, generator=torch.Generator().manual_seed(1))
    ref = t(x, ts, emb, return_dict=False)[0]
    n_lora = sum(1 for m in t.modules() if hasattr(m, "lora_A"))
    swapped = fp8_base(t)
    assert len(swapped) == n_lora == 2 * 10  # per block: self- and cross-attention's 4 projections, the FFN's 2
    assert all(name == "base_layer" and isinstance(parent.base_layer, FP8Linear) for parent, name in swapped)
    out = t(x, ts, emb, return_dict=False)[0]
    assert 1e-4 < rel(out, ref) < 0.1
    out.square().mean().backward()
    grads = {n: p.grad for n, p in t.named_parameters() if p.requires_grad}
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values())  # dL/dx flows to every adapter
    assert all(p.grad is None for n, p in t.named_parameters() if not p.requires_grad)
    restore_base(swapped)
    with torch.no_grad():
        torch.testing.assert_close(t(x, ts, emb, return_dict=False)[0], ref)


def test_fp8_base_needs_an_adapter_and_an_fp8_gpu(monkeypatch):
    with pytest.raises(V4SError, match="no frozen projection"):  # a model in training with no adapter
        fp8_base(WanTransformer3DModel(**{**tiny_wan22_config(1), "attention_head_dim": 16, "ffn_dim": 64}))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (8, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "NVIDIA A100-SXM4-40GB")
    ok, why = fp8_supported("cuda")
    assert not ok and "sm_80" in why
    with pytest.raises(V4SError, match="Leave FP8 off"):
        fp8_base(lora_transformer(), device="cuda")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (9, 0))
    assert fp8_supported("cuda")[0] and fp8_supported("cpu")[0]


def test_wan_config_fp8_base_builds_the_training_model_and_needs_lora(tmp_path):
    from v4s_lite.model import build_model
    from v4s_lite.train import train

    torch.manual_seed(0)
    WanTransformer3DModel(**{**tiny_wan22_config(2), "attention_head_dim": 16, "ffn_dim": 64}).save_pretrained(
        tmp_path / "wan" / "transformer")
    over = {"device": "cpu", "lora_rank": 4, "lora_alpha": 4, "wan.source": str(tmp_path / "wan"),
            "wan.text_encoder": "lite", "wan.fp8_base": True}
    cfg = load_config(ROOT / "configs/wan22_ti2v_5b_24gb.yaml", **over)
    model = build_model(cfg)
    bases = [m.base_layer for m in model.transformer.modules() if hasattr(m, "lora_A")]
    assert bases and all(isinstance(b, FP8Linear) for b in bases)
    assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    sampling = build_model(dataclasses.replace(cfg, lora_rank=0))  # load_model's path: the bf16 base, no FP8
    assert not any(isinstance(m, FP8Linear) for m in sampling.modules())
    with pytest.raises(V4SError, match="lora_rank > 0"):
        train(dataclasses.replace(cfg, lora_rank=0))


def test_fp8_for_sampling_quantizes_the_plain_projections_of_a_frozen_model():
    """Without an adapter (sampling a model in eval mode) the blocks' own projections go to FP8; the output stays
    within the mantissa's error of the bf16 one."""
    torch.manual_seed(0)
    t = WanTransformer3DModel(**{**tiny_wan22_config(2), "attention_head_dim": 16, "ffn_dim": 64}).eval()
    t.requires_grad_(False)
    x = torch.randn(1, 48, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    ts, emb = torch.full((1,), 500.0), torch.randn(1, 5, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = t(x, ts, emb, return_dict=False)[0]
        swapped = fp8_base(t)
        assert len(swapped) == 2 * 10 and {n for _, n in swapped} == {"to_q", "to_k", "to_v", "0", "proj", "2"}
        out = t(x, ts, emb, return_dict=False)[0]
        assert 1e-4 < rel(out, ref) < 0.1
        restore_base(swapped)
        torch.testing.assert_close(t(x, ts, emb, return_dict=False)[0], ref)


def test_sampling_with_fp8_stays_near_the_full_precision_video(tmp_path, capsys):
    """`v4s sample --fp8` on the shipped lite model: the generated latents move, a little next to another seed's."""
    from v4s_lite.cli import main
    from v4s_lite.data import make_dataset
    from v4s_lite.sample import SamplingSettings, V4SPipeline

    folder = make_dataset(tmp_path / "d", "grounding", 1, seed=5, clip_cfg="lite", progress=False)[0]
    lat = {}
    for fp8 in (False, True):
        pipe = V4SPipeline.from_pretrained(ROOT / "data/v4s-lite", device="cpu", fp8=fp8)
        assert any(isinstance(m, FP8Linear) for m in pipe.model.modules()) == fp8
        lat[fp8] = pipe(pipe.load_example(folder), SamplingSettings(steps=2), seed=0)[0].latents
        if not fp8:  # the scale of "near": another noise seed's video from the same model
            other_seed = pipe(pipe.load_example(folder), SamplingSettings(steps=2), seed=1)[0].latents
    # measured 2026-12-06 on the shipped 6.1M model: 0.19 for FP8, 0.93 for another seed (the 2.3M model: < 0.15)
    assert 1e-4 < rel(lat[True], lat[False]) < 0.3 * rel(other_seed, lat[False])
    assert main(["eval", "--videos", str(tmp_path / "d"), "--out", str(tmp_path / "e"), "--fp8"]) != 0
    assert "--fp8 is for --checkpoint" in capsys.readouterr().err


def test_sampling_compiles_the_blocks_when_asked_and_by_default_where_it_pays(tmp_path, capsys):
    """`v4s sample --compile` (V4SPipeline.from_pretrained(compile=True)) compiles every transformer block and
    generates what the eager model generates; by default it compiles only on a GPU, for a run trained with
    wan.compile or sampled in FP8 (eager FP8 is slower than bf16: results/bench_wan_h200.md)."""
    from types import SimpleNamespace

    from v4s_lite.cli import main
    from v4s_lite.data import make_dataset
    from v4s_lite.sample import SamplingSettings, V4SPipeline, compile_by_default

    folder = make_dataset(tmp_path / "d", "grounding", 1, seed=5, clip_cfg="lite", progress=False)[0]
    lat = {}
    for compile in (False, True):
        pipe = V4SPipeline.from_pretrained(ROOT / "data/v4s-lite", device="cpu", compile=compile)
        assert all((b._compiled_call_impl is not None) == compile for b in pipe.model.transformer.blocks)
        lat[compile] = pipe(pipe.load_example(folder), SamplingSettings(steps=2), seed=0)[0].latents
    assert rel(lat[True], lat[False]) < 1e-4
    wan_run = SimpleNamespace(wan=SimpleNamespace(compile=True))
    eager_run, lite_run = SimpleNamespace(wan=SimpleNamespace(compile=False)), SimpleNamespace(wan=None)
    assert compile_by_default(wan_run, "cuda") and not compile_by_default(wan_run, "cpu")
    assert not compile_by_default(eager_run, "cuda") and compile_by_default(eager_run, "cuda", fp8=True)
    assert not compile_by_default(lite_run, "cuda") and not compile_by_default(None, "cpu", fp8=True)
    assert main(["eval", "--videos", str(tmp_path / "d"), "--out", str(tmp_path / "e"), "--no-compile"]) != 0
    assert "--no-compile is for --checkpoint" in capsys.readouterr().err


def test_the_training_loop_trains_the_adapter_over_an_fp8_base(tmp_path):
    """train() as `v4s wan-train` runs it with wan.fp8_base: EMA, clipping, logging and the adapter checkpoint over
    FP8 base layers; the loss is finite, the adapter moves, the checkpoint holds the adapter only."""
    from test_train import NULL, fake_items, small_cfg

    from v4s_lite.checkpoints import LORA_DIR, LORA_WEIGHTS
    from v4s_lite.model import V4SModel, add_lora
    from v4s_lite.train import read_log, train

    cfg = small_cfg(tmp_path, steps=4, lora_rank=4, lora_alpha=4, checkpoint_every=4, ema_decay=0.9)
    torch.manual_seed(0)
    model = V4SModel(WanTransformer3DModel(**{**tiny_wan22_config(2), "attention_head_dim": 16, "ffn_dim": 64,
                                              "in_channels": 12, "out_channels": 12, "text_dim": 64}))
    add_lora(model, cfg)
    fp8_base(model.transformer)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    run = train(cfg, model=model, items=fake_items(), null_text=NULL)
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in read_log(run))
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if p.requires_grad)
    from safetensors.torch import load_file

    saved = load_file(run / "step_000004" / LORA_DIR / LORA_WEIGHTS)
    assert saved and all("lora" in k for k in saved)  # no FP8 buffer in the adapter file


def test_the_memory_estimate_counts_an_fp8_base_at_one_byte_per_projection_weight():
    """`v4s wan-memory` / the estimate printed before training: wan.fp8_base halves the blocks' projections (98% of
    the 5B's weights), and nothing else."""
    from v4s_lite.budget import count_params, projection_params
    from v4s_lite.full import memory_report
    from v4s_lite.model import transformer_config

    cfg5b = transformer_config("wan2.2-ti2v-5b")
    with torch.device("meta"):
        t = WanTransformer3DModel(**cfg5b)
    blocks = sum(m.weight.numel() for m in t.blocks.modules() if isinstance(m, nn.Linear))
    assert projection_params(cfg5b) == blocks and 0.97 < blocks / count_params(cfg5b) < 0.99
    base = load_config(ROOT / "configs/wan22_ti2v_5b_24gb.yaml")
    bf16, _ = memory_report(base)
    fp8, _ = memory_report(dataclasses.replace(base, wan=dataclasses.replace(base.wan, fp8_base=True)))
    saved = bf16.weights_gib - fp8.weights_gib
    assert abs(saved - blocks / 2**30) < 1e-6 and fp8.activations_gib == bf16.activations_gib

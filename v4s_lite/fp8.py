"""FP8 matmuls for the frozen base of a LoRA fine-tune (notebook 10; `wan.fp8_base: true`).

A LoRA run never updates the base weights, so they can be quantized once to FP8 (e4m3) and multiplied on the FP8
tensor cores of Ada and Hopper GPUs (L4, H100, H200: twice the bf16 rate), with the activations quantized per token
on the fly. The adapter (lora_A, lora_B) stays in fp32 beside it: only the frozen product x W^T goes through FP8.

Scaling is rowwise, as in torchao's "rowwise" float8 recipe: one scale per token of x and one per output row of W,
so an outlier costs precision only in its own row. The backward pass needs only dL/dx = dL/dy W (the base takes
no gradient), also in FP8. There W's row scales lie along the contraction, where a matmul cannot apply them, so
they are folded into dL/dy first (sum_n g[m,n] W[n,k] = sum_n (g[m,n] s_n) Wq[n,k]); W is kept once, in FP8, and
transposed to the layout cuBLAS wants (row-major x column-major) only for the moment of the backward product. The
frozen base then takes half the memory of its bf16 weights (5 GB less for Wan2.2-TI2V-5B).

Numerics: the e4m3 mantissa has 3 bits, so each product carries ~3% relative error (tests/test_fp8.py checks the
forward and the input gradient against the bf16 product). Speed on an H200: results/bench_wan_h200.md (compiled:
0.90x the bf16 training step, 0.85x the guided denoising step; eager it is slower than bf16). Whether the error
changes what a LoRA learns is not measured (only random 5B weights are at hand), so the configs leave it off.
"""
from __future__ import annotations

import torch
from torch import nn

from .utils import V4SError

E4M3 = torch.float8_e4m3fn
E4M3_MAX = float(torch.finfo(E4M3).max)  # 448


def fits_fp8(*dims: int) -> bool:
    """cuBLAS multiplies FP8 only when every dimension is a multiple of 16 (Wan2.2-TI2V-5B's 3,072 and 14,336 are)."""
    return all(d % 16 == 0 for d in dims)


def quantize_rows(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, K) -> (FP8 (M, K), float32 scales (M, 1)) with t ~= q * scale, each row scaled to the e4m3 range."""
    amax = t.detach().abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12)
    scale = amax / E4M3_MAX
    return (t.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3), scale


def _pad_rows(t: torch.Tensor, multiple: int = 16) -> torch.Tensor:
    """cuBLAS's FP8 matmul wants every dimension a multiple of 16; token counts (9,256 + ...) rarely are."""
    pad = (-t.shape[0]) % multiple
    return torch.nn.functional.pad(t, (0, 0, 0, pad)) if pad else t


def _fp8_matmul(a: torch.Tensor, b_q_t: torch.Tensor, b_scale: torch.Tensor, out_dtype) -> torch.Tensor:
    """a (M, K) in high precision times b (K, N) given as its FP8 transpose (N, K) row-major with scales (N, 1)."""
    m = a.shape[0]
    a_q, a_scale = quantize_rows(_pad_rows(a))
    out = torch._scaled_mm(a_q, b_q_t.t(), scale_a=a_scale, scale_b=b_scale.t(), out_dtype=out_dtype)
    return out[:m]


class _FP8FrozenMatmul(torch.autograd.Function):
    """y = x W^T with W frozen in FP8 (w_q (N, K), row scales (N, 1)); backward gives dL/dx only."""

    @staticmethod
    def forward(ctx, x, w_q, w_scale):
        ctx.save_for_backward(w_q, w_scale)
        return _fp8_matmul(x, w_q, w_scale, x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        w_q, w_scale = ctx.saved_tensors
        # dL/dx = (dL/dy * s) Wq: the row scales of W folded into the gradient's columns, then one FP8 product with
        # Wq as (N, K) column-major (a transient transposed copy) and unit scales on its side
        g = grad_out.float() * w_scale.t()
        wt_q = w_q.t().contiguous()  # (K, N) row-major = (N, K) column-major after .t()
        ones = torch.ones((wt_q.shape[0], 1), dtype=torch.float32, device=w_q.device)
        return _fp8_matmul(g, wt_q, ones, grad_out.dtype), None, None


class FP8Linear(nn.Module):
    """A frozen nn.Linear whose weight lives in FP8 (one byte per weight and one scale per output row). No
    parameters: the weights are buffers, so optimizers, EMA and adapter checkpoints never see them."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        if linear.weight.requires_grad:
            raise V4SError("FP8Linear is for frozen base weights (a LoRA run's base): this weight requires grad; "
                           "freeze it first (add_lora does) or leave FP8 off")
        n, k = linear.weight.shape
        if not fits_fp8(n, k):
            raise V4SError(f"FP8Linear needs both weight dimensions divisible by 16 (cuBLAS FP8); got {n} x {k}")
        self.in_features, self.out_features = k, n
        w = linear.weight.detach()
        w_q, w_scale = quantize_rows(w)
        self.register_buffer("w_q", w_q)
        self.register_buffer("w_scale", w_scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def _apply(self, fn, recurse=True):
        # Module.to(dtype) casts every floating buffer, FP8 ones included, and a float32 scale through bf16 would
        # lose bits: the weights and scales only follow the device (read off fn applied to an empty tensor)
        kept = {n: self._buffers.pop(n) for n in ("w_q", "w_scale")}
        super()._apply(fn, recurse)
        for n, b in kept.items():
            self._buffers[n] = b.to(fn(b.new_empty(0)).device)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        # the dtype an nn.Linear would return: autocast's (bf16 in training) or the input's
        dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
        x2 = x.reshape(-1, shape[-1]).to(dtype)
        y = _FP8FrozenMatmul.apply(x2, self.w_q, self.w_scale)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fp8=e4m3 rowwise"


def fp8_supported(device) -> tuple[bool, str]:
    """Can this device multiply in FP8? CUDA needs compute capability >= 8.9 (Ada, Hopper); CPU runs it (slowly:
    for tests)."""
    device = torch.device(device)
    if device.type == "cpu":
        return True, "CPU (emulated: for tests, not for speed)"
    if device.type != "cuda":
        return False, f"{device.type} has no FP8 matmul in torch"
    cc = torch.cuda.get_device_capability(device)
    name = torch.cuda.get_device_name(device)
    if cc < (8, 9):
        return False, (f"{name} (sm_{cc[0]}{cc[1]}) has no FP8 tensor cores (they start at sm_89: L4, RTX 4090, "
                       "H100, H200; T4 and A100 do not have them)")
    return True, f"{name} (sm_{cc[0]}{cc[1]})"


def fp8_base(transformer: nn.Module, device=None) -> dict:
    """Swap every frozen nn.Linear of the transformer blocks for an FP8Linear: the projections of self- and
    cross-attention and the FFN, i.e. the base layer under each LoRA adapter when there is one (training,
    `wan.fp8_base`) or the plain projections when there is none (sampling, `--fp8`). The adapter's own lora_A /
    lora_B stay as they are. Returns {(parent, name): original} so `restore_base` can undo it (the benchmark times
    both on one model). Layers with a dimension not divisible by 16 stay as they were (none in Wan2.2-TI2V-5B)."""
    if device is not None:
        ok, why = fp8_supported(device)
        if not ok:
            raise V4SError(f"FP8 (wan.fp8_base / --fp8): {why}. Leave FP8 off on this GPU.")
    blocks = getattr(getattr(transformer, "transformer", transformer), "blocks", None)
    if blocks is None:
        raise V4SError("fp8_base needs a Wan transformer (its `blocks`) or a V4SModel around one")
    swapped = {}
    for parent_name, parent in blocks.named_modules():
        for name, child in list(parent.named_children()):
            full = f"{parent_name}.{name}"
            if (isinstance(child, nn.Linear) and "lora_" not in full and not child.weight.requires_grad
                    and fits_fp8(*child.weight.shape)):
                swapped[(parent, name)] = child
                setattr(parent, name, FP8Linear(child))
    if not swapped:
        raise V4SError("fp8_base found no frozen projection to quantize (widths divisible by 16, weights frozen: a "
                       "LoRA run freezes its base, sampling runs in eval mode)")
    return swapped


def restore_base(swapped: dict) -> None:
    """Undo fp8_base: put the original bf16 layers back."""
    for (parent, name), original in swapped.items():
        setattr(parent, name, original)

"""Joint classifier-free guidance: guide with the instruction *and* with the context video.

Training (`drop_conditions`) sometimes removes a condition so one model also learns the unconditional
predictions: the instruction becomes the null text "", the context becomes pure Gaussian noise (as in the
paper: an empty context would change the sequence length; noise keeps the layout and says "no scene").
The clean first target latent is kept in every case: it is the start of the video being generated.

Inference (`joint_cfg`), with s(x, t, text, ctx) the model's prediction and w the guidance scale:
    none:  s(x, t, instr, x_ctx)                                                         1 pass
    text:  s(x, t, null, x_ctx) + w (s(x, t, instr, x_ctx) - s(x, t, null, x_ctx))       2 passes
    joint: s(x, t, null, z_ctx) + w (s(x, t, instr, x_ctx) - s(x, t, null, z_ctx))       2 passes (the paper)
    three: s(x, t, null, z_ctx) + w_ctx  (s(x, t, null, x_ctx)  - s(x, t, null, z_ctx))
                                + w_text (s(x, t, instr, x_ctx) - s(x, t, null, x_ctx))  3 passes
The passes of one step are stacked on the batch axis and run as one forward.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .utils import V4SError

MODES = {"none": 1, "text": 2, "joint": 2, "three": 3}


class Dropped(NamedTuple):
    text_emb: torch.Tensor
    context_latents: torch.Tensor
    text_dropped: torch.Tensor  # (B,) bool
    context_dropped: torch.Tensor  # (B,) bool


def drop_conditions(text_emb, context_latents, null_text_emb, p_text: float = 0.1, p_context: float = 0.1,
                    p_both: float = 0.1, generator: torch.Generator | None = None) -> Dropped:
    """Per sample, drop only the instruction (p_text), only the context (p_context), or both (p_both).

    The three events are exclusive: one uniform draw per sample picks at most one of them, so the rates are
    realised as given (a sample loses its instruction with probability p_text + p_both).
    `generator` makes the draws and the context noise reproducible (on its device).
    """
    for name, p in (("p_text", p_text), ("p_context", p_context), ("p_both", p_both)):
        if not 0.0 <= p <= 1.0:
            raise V4SError(f"{name}={p} is not a probability in [0, 1]")
    if p_text + p_context + p_both > 1.0 + 1e-9:
        raise V4SError(f"p_text + p_context + p_both = {p_text + p_context + p_both:.3g} > 1; the three are exclusive")
    b = text_emb.shape[0]
    if context_latents.shape[0] != b:
        raise V4SError(f"text_emb has batch {b} but context_latents has {context_latents.shape[0]}")
    null = null_text_emb.expand(b, *text_emb.shape[1:]) if null_text_emb.shape[0] == 1 else null_text_emb
    if null.shape != text_emb.shape:
        raise V4SError(f"null_text_emb shape {tuple(null_text_emb.shape)} does not match text_emb {tuple(text_emb.shape)}")

    # draws on the generator's device (a CUDA generator builds training batches on the GPU: train.DeviceBatches)
    dev = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(b, generator=generator, device=dev)
    both = u < p_both
    text_only = (u >= p_both) & (u < p_both + p_text)
    ctx_only = (u >= p_both + p_text) & (u < p_both + p_text + p_context)
    text_dropped, context_dropped = both | text_only, both | ctx_only

    noise = torch.randn(context_latents.shape, generator=generator, dtype=torch.float32, device=dev)
    noise = noise.to(context_latents.device, context_latents.dtype)
    td = text_dropped.to(text_emb.device).view(b, 1, 1)
    cd = context_dropped.to(context_latents.device).view(b, *[1] * (context_latents.ndim - 1))
    return Dropped(torch.where(td, null.to(text_emb), text_emb), torch.where(cd, noise, context_latents),
                   text_dropped, context_dropped)


def guidance_batch(mode, text_emb, null_text_emb, context_latents, noise_context):
    """The (text, context) conditions of each pass, stacked on the batch axis: (texts, contexts, n_passes)."""
    if mode not in MODES:
        raise V4SError(f"unknown guidance mode {mode!r}; choose one of {list(MODES)}")
    null = null_text_emb.expand(text_emb.shape[0], *null_text_emb.shape[1:]) if null_text_emb.shape[0] == 1 \
        else null_text_emb
    if null.shape != text_emb.shape:
        raise V4SError(f"null_text_emb {tuple(null_text_emb.shape)} does not match text_emb {tuple(text_emb.shape)}: "
                       "encode the null instruction with the same text encoder (TextEncoder.null())")
    passes = {"none": [(text_emb, context_latents)],
              "text": [(text_emb, context_latents), (null, context_latents)],
              "joint": [(text_emb, context_latents), (null, noise_context)],
              "three": [(text_emb, context_latents), (null, context_latents), (null, noise_context)]}[mode]
    return torch.cat([p[0] for p in passes]), torch.cat([p[1] for p in passes]), len(passes)


def combine(mode, preds, scale, text_scale=None, context_scale=None):
    """Combine the passes' predictions (list in `guidance_batch` order) with the formulas in the module doc."""
    if mode == "none":
        return preds[0]
    if mode in ("text", "joint"):
        cond, uncond = preds
        return uncond + scale * (cond - uncond)
    cond, null_ctx, null_noise = preds
    text_scale = scale if text_scale is None else text_scale
    context_scale = scale if context_scale is None else context_scale
    return null_noise + context_scale * (null_ctx - null_noise) + text_scale * (cond - null_ctx)


def joint_cfg(model, noisy_latents, t, *, context_latents, first_latent, text_emb, null_text_emb, context_positions,
              target_positions=None, mode: str = "joint", scale: float = 5.0, text_scale: float | None = None,
              context_scale: float | None = None, noise_context: torch.Tensor | None = None,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """One guided prediction for `noisy_latents`, all passes in one batched forward of `model` (a V4SModel).

    `noise_context`: the Gaussian stand-in for the context in the null branch (drawn with `generator` when not
    given; pass the same tensor every step to keep one null context over a whole sampling run).
    Every pass keeps its sample's token layout: shared positions (F,) stay shared, per-sample (B, F) are repeated.
    """
    if mode not in MODES:
        raise V4SError(f"unknown guidance mode {mode!r}; choose one of {list(MODES)}")
    if mode != "three" and (text_scale is not None or context_scale is not None):
        raise V4SError("text_scale / context_scale apply to mode='three' only; use scale for the other modes")
    if mode in ("joint", "three") and noise_context is None:
        noise_context = torch.randn(context_latents.shape, generator=generator, dtype=torch.float32)
        noise_context = noise_context.to(context_latents.device, context_latents.dtype)
    texts, contexts, n = guidance_batch(mode, text_emb, null_text_emb, context_latents, noise_context)

    def per_pass(positions):  # one layout per sample (B, F) is repeated for every pass; a shared (F,) one is kept
        if positions is None or torch.as_tensor(positions).ndim < 2:
            return positions
        return torch.cat([torch.as_tensor(positions)] * n)

    t = torch.as_tensor(t, dtype=torch.float32, device=noisy_latents.device).reshape(-1).expand(noisy_latents.shape[0])
    pred = model(contexts, torch.cat([first_latent] * n), torch.cat([noisy_latents] * n), torch.cat([t] * n), texts,
                 per_pass(context_positions), per_pass(target_positions))
    return combine(mode, list(pred.chunk(n)), scale, text_scale, context_scale)

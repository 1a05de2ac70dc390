"""Context reuse (notebooks 04 and 10): an attention processor for diffusers' Wan self-attention in which the
clean context tokens attend only to context tokens.

Then nothing about the context depends on the noisy target or its timestep, so its keys and values can be
computed once per sample instead of at every denoising step. `V4SModel(context_attention="context_only")`
trains through the masked mode and samples through fill/reuse (model.py); the Wan2.2-5B benchmark measures it.
"""
from __future__ import annotations

import torch

from .utils import V4SError


class ContextCache:
    """Context reuse for sampling: compute the clean context's keys and values once per sample.

    The model choice: in self-attention, context tokens attend only to context tokens (target tokens attend to
    everything). Then nothing about the context depends on the noisy target or its timestep, so across the
    ~50 denoising steps the context's per-layer keys/values never change. Modes:
        "masked"  one sequence [context | target]: the reference, and how such a model is trained
        "fill"    the input is the context alone: run it once, keep every layer's k, v
        "reuse"   the input is the target alone: its queries attend to [kept context k, v | own k, v]
    Only the first `n_context_tokens` tokens count as context in "masked" mode (0: plain attention). Each denoising step then
    costs the target tokens' share of the projections and of the attention (about half, at the paper's shape).
    """

    def __init__(self, transformer):
        self.transformer = getattr(transformer, "transformer", transformer)
        self.mode = "masked"
        self.n_context_tokens = 0
        self._old = {}

    def __enter__(self):
        for block in self.transformer.blocks:
            self._old[block] = block.attn1.processor
            block.attn1.set_processor(_ContextAttnProcessor(self, self._old[block]))
        return self

    def __exit__(self, *exc):
        for block, proc in self._old.items():
            block.attn1.set_processor(proc)
        self._old.clear()
        return False

    def clear(self) -> None:
        """Forget the cached context (a new sample); the next 'reuse' needs a 'fill' first."""
        for block in self.transformer.blocks:
            if isinstance(block.attn1.processor, _ContextAttnProcessor):
                block.attn1.processor.kv = None


def _rotate(x, cos, sin):
    # diffusers' Wan rotary embedding (interleaved pairs), on (B, S, heads, head_dim)
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = cos[..., 0::2], sin[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2).type_as(x)


class _ContextAttnProcessor:
    """WanAttnProcessor's self-attention path with ContextCache's masking/caching (see ContextCache)."""

    def __init__(self, cache: ContextCache, base):
        # the layer's cached context keys/values live here, not in a table indexed by layer: an int index
        # would be a constant to torch.compile and recompile the shared block code once per layer
        self.cache, self.kv = cache, None
        self._attention_backend = getattr(base, "_attention_backend", None)
        self._parallel_config = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        from diffusers.models.attention_dispatch import dispatch_attention_fn
        from diffusers.models.transformers.transformer_wan import _get_qkv_projections

        q, k, v = _get_qkv_projections(attn, hidden_states, None)
        q, k = attn.norm_q(q), attn.norm_k(k)
        q, k, v = (t.unflatten(2, (attn.heads, -1)) for t in (q, k, v))
        if rotary_emb is not None:
            q, k = _rotate(q, *rotary_emb), _rotate(k, *rotary_emb)

        def attend(q_, k_, v_):
            return dispatch_attention_fn(q_, k_, v_, backend=self._attention_backend)

        mode = self.cache.mode
        if mode == "masked":
            n = self.cache.n_context_tokens
            if not 0 <= n <= q.shape[1]:
                raise V4SError(f"ContextCache.n_context_tokens={n} must be in 0..{q.shape[1]} (the sequence length)")
            out = (attend(q, k, v) if n == 0  # no context: every token attends to every token
                   else torch.cat([attend(q[:, :n], k[:, :n], v[:, :n]), attend(q[:, n:], k, v)], dim=1))
        elif mode == "fill":
            self.kv = (k, v)
            out = attend(q, k, v)
        elif mode == "reuse":
            if self.kv is None:
                raise V4SError("ContextCache is in 'reuse' mode but holds no context: run the context once in 'fill' mode")
            kc, vc = self.kv
            if kc.shape[0] != q.shape[0]:
                raise V4SError(f"the cached context has batch {kc.shape[0]} but this step has batch {q.shape[0]}")
            out = attend(q, torch.cat([kc, k], dim=1), torch.cat([vc, v], dim=1))
        else:
            raise V4SError(f"ContextCache.mode must be 'masked', 'fill' or 'reuse'; got {mode!r}")
        out = out.flatten(2, 3).type_as(q)
        return attn.to_out[1](attn.to_out[0](out))

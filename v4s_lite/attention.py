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


# ------------------------------------------------------------------------------------ where the model looks
class AttentionCapture:
    """Record where chosen query tokens look: the attention mass they give to each latent frame, in every layer.

        with AttentionCapture(model, query_frames=[-1]) as cap:   # the last generated latent frame
            generate(model, ..., reuse_context=False)
        mass = cap.frame_mass(batch=0)   # (n_frames,): mean over layers, heads, queries and forwards; sums to 1

    Installs an `AttentionCaptureProcessor` on every block's self-attention (`attn1`); each wraps the processor
    that was there (diffusers' WanAttnProcessor, or the context-only mask of `V4SModel(context_attention=
    "context_only")`), so the model's output is unchanged. The softmax of the chosen queries against every key is
    computed again in float32 beside it: only the chosen queries, so the cost is ~ len(query_frames)/n_frames of
    one attention. The frames are the sequence's latent frames, `[context | first | noisy]` (model.TokenLayout).

    query_frames: latent-frame indices of the queries (negative counts from the end). tokens_per_frame: None =
    read from the latents of each V4SModel forward. Context reuse (sampling a context-only model with
    reuse_context=True) runs the context and the target separately, so pass reuse_context=False to generate.
    """

    def __init__(self, model, query_frames=(-1,), tokens_per_frame: int | None = None):
        self.model = model
        self.transformer = getattr(model, "transformer", model)
        self.query_frames = [int(f) for f in query_frames]
        if not self.query_frames:
            raise V4SError("AttentionCapture needs at least one query frame")
        self.tokens_per_frame = tokens_per_frame
        self.records: list[tuple[int, torch.Tensor]] = []  # (layer, (B, n_frames) mass) per forward and layer
        self._old, self._hook = {}, None

    def __enter__(self):
        if getattr(self.model, "context_attention", "full") == "context_only" and getattr(self.model, "_mask", 1) is None:
            self.model._context_mask(0)  # install the mask processor first, so that the capture wraps it
        for i, block in enumerate(self.transformer.blocks):
            self._old[block] = block.attn1.processor
            block.attn1.set_processor(AttentionCaptureProcessor(self, self._old[block], layer=i))
        if self.tokens_per_frame is None and hasattr(self.model, "layout"):
            self._hook = self.model.register_forward_pre_hook(self._read_layout, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        for block, proc in self._old.items():
            block.attn1.set_processor(proc)
        self._old.clear()
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        return False

    def _read_layout(self, module, args, kwargs):
        noisy = args[2] if len(args) > 2 else kwargs.get("noisy_latents")
        if noisy is not None:
            self._tpf = module.layout(0, 0, noisy.shape[3], noisy.shape[4]).tokens_per_frame

    def _frames(self, seq_len: int) -> tuple[int, int]:
        tpf = self.tokens_per_frame or getattr(self, "_tpf", None)
        if not tpf:
            raise V4SError("AttentionCapture does not know the tokens per latent frame: pass tokens_per_frame= "
                           "(model.layout(...).tokens_per_frame) when the model is not a V4SModel")
        if seq_len % tpf:
            raise V4SError(f"a sequence of {seq_len} tokens is not a whole number of {tpf}-token frames")
        return tpf, seq_len // tpf

    def layer_mass(self, batch=None) -> torch.Tensor:
        """(n_layers, n_frames): each layer's mass per latent frame, averaged over the recorded forwards.
        batch: None = every sample; an int or slice = those samples (e.g. 0: the conditional pass of joint CFG)."""
        if not self.records:
            raise V4SError("AttentionCapture recorded nothing: run the model inside the `with` block (for a "
                           "context-only model sample with reuse_context=False)")
        n_layers = 1 + max(layer for layer, _ in self.records)
        sel = slice(None) if batch is None else (slice(batch, batch + 1) if isinstance(batch, int) else batch)
        shapes = {m.shape[1] for _, m in self.records}
        if len(shapes) > 1:
            raise V4SError(f"the recorded forwards have different frame counts {sorted(shapes)}: capture one layout at a time")
        out = torch.zeros(n_layers, shapes.pop())
        counts = torch.zeros(n_layers, 1)
        for layer, m in self.records:
            out[layer] += m[sel].mean(0)
            counts[layer] += 1
        return out / counts.clamp(min=1)

    def frame_mass(self, batch=None) -> torch.Tensor:
        """(n_frames,): the attention mass per latent frame, averaged over layers (and forwards); sums to 1."""
        return self.layer_mass(batch).mean(0)

    def clear(self) -> None:
        self.records.clear()


class AttentionCaptureProcessor:
    """A diffusers attention processor for Wan's self-attention that records the attention mass of the chosen
    query frames on every latent frame (see AttentionCapture), then returns the wrapped processor's output."""

    def __init__(self, capture: AttentionCapture, base, layer: int = 0):
        self.capture, self.base, self.layer = capture, base, layer
        self._attention_backend = getattr(base, "_attention_backend", None)
        self._parallel_config = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        from diffusers.models.transformers.transformer_wan import _get_qkv_projections

        with torch.no_grad():
            tpf, n_frames = self.capture._frames(hidden_states.shape[1])
            frames = sorted({f % n_frames for f in self.capture.query_frames})
            idx = torch.cat([torch.arange(f * tpf, (f + 1) * tpf) for f in frames]).to(hidden_states.device)
            q, k, _ = _get_qkv_projections(attn, hidden_states, None)
            q, k = attn.norm_q(q), attn.norm_k(k)
            q, k = (t.unflatten(2, (attn.heads, -1)) for t in (q, k))
            if rotary_emb is not None:
                q, k = _rotate(q, *rotary_emb), _rotate(k, *rotary_emb)
            q = q[:, idx].float()
            logits = torch.einsum("bqhd,bkhd->bhqk", q, k.float()) * q.shape[-1] ** -0.5
            n_ctx = self.base.cache.n_context_tokens if isinstance(self.base, _ContextAttnProcessor) \
                and self.base.cache.mode == "masked" else 0
            if n_ctx:  # context queries see only context keys (the context-only mask)
                blocked = (idx[:, None] < n_ctx) & (torch.arange(k.shape[1], device=idx.device)[None] >= n_ctx)
                logits = logits.masked_fill(blocked, float("-inf"))
            probs = logits.softmax(-1)  # (B, heads, Q, keys)
            mass = probs.mean((1, 2)).unflatten(-1, (n_frames, tpf)).sum(-1)  # (B, n_frames)
            self.capture.records.append((self.layer, mass.cpu()))
        return self.base(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb)


def attention_share(mass, showing) -> tuple[float, float]:
    """(share, chance): the part of the attention on chosen frames that falls on the `showing` ones (e.g. the
    context chunks where the target is in view), and what a uniform spread over the chosen frames would give.

    mass: attention per frame over the frames considered (e.g. frame_mass()[context frames]); showing: bools of
    the same length. NaN for both when no frame shows it or every frame does (nothing to tell apart)."""
    mass = torch.as_tensor(mass, dtype=torch.float64).flatten()
    showing = torch.as_tensor(showing, dtype=torch.bool).flatten()
    if mass.shape != showing.shape:
        raise V4SError(f"{mass.numel()} masses but {showing.numel()} showing flags")
    if not showing.any() or showing.all():
        return float("nan"), float("nan")
    return float(mass[showing].sum() / mass.sum()), float(showing.float().mean())

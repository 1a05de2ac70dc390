"""The context-conditioned Wan transformer: Video4Spatial's one idea in the model, a sequence along time.

    latent frames:  [ c_0 c_1 ... c_{n-1} | x_0 | x_1 ... x_m ]
                      clean context        clean  noisy target
                      (scan chunks)        "+1"   latents
    timestep:         0   0  ...  0          0     t  ...  t       (one per token: Wan2.2 TI2V's per-token path)
    RoPE time:        context_positions     target_positions (continue after the context, see rope.py)
    loss:             -                      -     yes ... yes

Everything runs through one unmodified diffusers `WanTransformer3DModel`: the context is conditioning only
because its tokens are clean (t = 0) and the loss ignores them. `V4SModel` builds that sequence, the per-token
timesteps and the RoPE positions, and returns the prediction for the noisy latents only. Any transformer
config works: the presets below are a tiny test model, the CPU-trainable lite model and Wan2.2-TI2V-5B.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import WanTransformer3DModel
from torch import nn

from .attention import ContextCache
from .config import get_clip_config
from .fp8 import fp8_base
from .rope import DEFAULT_GAP, ContextRoPE, sequence_positions_batch, target_start_after_scan
from .utils import V4SError, get_device, import_object

V4S_CONFIG_NAME = "v4s_config.json"

# Channel counts of the lite codec and lite text encoder (codec.LiteCodec(), codec.LiteTextEncoder()).
LITE_LATENT_CHANNELS = 12
LITE_TEXT_DIM = 64


def _lite_preset(heads: int, head_dim: int, layers: int, ffn_dim: int, freq_dim: int = 64) -> dict:
    """A transformer for the lite codec and text encoder: only the size varies between the lite presets."""
    return dict(patch_size=(1, 2, 2), num_attention_heads=heads, attention_head_dim=head_dim,
                in_channels=LITE_LATENT_CHANNELS, out_channels=LITE_LATENT_CHANNELS, text_dim=LITE_TEXT_DIM,
                freq_dim=freq_dim, ffn_dim=ffn_dim, num_layers=layers, cross_attn_norm=True,
                qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)


_PRESETS = {
    # Seconds on a CPU: unit tests. head_dim 12 still splits 4/4/4 into time/height/width.
    "tiny": _lite_preset(heads=2, head_dim=12, layers=2, ffn_dim=48, freq_dim=32),
    # The course's default lite size, minutes on one GPU (2.3M parameters): 4 layers, width 192 = 4 heads x 48
    # (16/16/16 split); shipped until 2026-12-06.
    "lite": _lite_preset(heads=4, head_dim=48, layers=4, ffn_dim=512),
    # The size sweep's larger lite models (issue 13, chosen on validation rooms): 6.1M parameters (width 256 = 4 heads
    # x 64, 6 layers; 12 MB in bf16: the shipped model, data/v4s-lite) and 17.1M (width 384 = 6 heads x 64, 8 layers;
    # 34 MB in bf16).
    "lite_m": _lite_preset(heads=4, head_dim=64, layers=6, ffn_dim=768),
    "lite_l": _lite_preset(heads=6, head_dim=64, layers=8, ffn_dim=1024),
    # Exactly Wan-AI/Wan2.2-TI2V-5B-Diffusers/transformer/config.json (all other keys are diffusers' defaults).
    "wan2.2-ti2v-5b": dict(patch_size=(1, 2, 2), num_attention_heads=24, attention_head_dim=128, in_channels=48,
                           out_channels=48, text_dim=4096, freq_dim=256, ffn_dim=14336, num_layers=30,
                           cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=None,
                           added_kv_proj_dim=None, rope_max_seq_len=1024, pos_embed_seq_len=None),
}


def transformer_config(name: str) -> dict:
    """Keyword arguments for `WanTransformer3DModel(**cfg)`: "tiny", "lite", "lite_m", "lite_l" or "wan2.2-ti2v-5b"."""
    if name not in _PRESETS:
        raise V4SError(f"unknown transformer preset {name!r}; choose one of {sorted(_PRESETS)}")
    return dict(_PRESETS[name])


@dataclass(frozen=True)
class TokenLayout:
    """Where each latent frame sits in the sequence, and what that implies per token."""

    n_context: int  # clean context latents
    n_noisy: int  # noisy target latents (the clean first target latent sits between)
    tokens_per_frame: int  # (h / p_h) * (w / p_w)

    @property
    def n_frames(self) -> int:
        return self.n_context + 1 + self.n_noisy

    @property
    def n_tokens(self) -> int:
        return self.n_frames * self.tokens_per_frame

    @property
    def frame_roles(self) -> list[str]:
        return ["context"] * self.n_context + ["first"] + ["noisy"] * self.n_noisy

    def noisy_mask(self, device=None) -> torch.Tensor:
        """(n_tokens,) bool: True on the noisy target tokens (the sequence's tail, after the context and the first
        frame), built on `device`: copying a host mask there would make the host wait for the GPU every step."""
        return torch.arange(self.n_tokens, device=device) >= (self.n_context + 1) * self.tokens_per_frame

    @property
    def loss_mask(self) -> torch.Tensor:
        """(n_tokens,) bool: True on the noisy target tokens, the only ones the loss covers."""
        return self.noisy_mask()

    def timesteps(self, t: torch.Tensor) -> torch.Tensor:
        """(B,) diffusion times -> (B, n_tokens): 0 for clean context and first frame, t for the noisy tokens."""
        t = torch.as_tensor(t, dtype=torch.float32).reshape(-1)
        return self.noisy_mask(t.device)[None].float() * t[:, None]


class V4SModel(nn.Module):
    """A `WanTransformer3DModel` whose input is `[context | first | noisy]` along time (see the module doc).

    `rope_gap`: distance between the last context latent's position and the first target latent's (rope.py).
    `rope_target_start`: None (the target continues `rope_gap` after the last context latent) or the fixed
    position the target starts at (the "after_scan" rule, rope.target_start_after_scan), kept when a longer
    context reaches past it.
    `rope_max_seq_len`: build a longer RoPE table than the config's (saved into the transformer's config, so
    diffusers' own `from_pretrained` rebuilds it).
    `context_attention`: "full" (the paper: every token attends to every token) or "context_only" (our choice
    for speed: context tokens attend only to context tokens, target tokens to everything). With "context_only"
    the context's keys/values do not depend on the noisy target, so sampling can compute them once per sample
    instead of at every denoising step (attention.ContextCache). A model must be trained the way it is sampled.
    """

    ATTENTION = ("full", "context_only")

    def __init__(self, transformer: WanTransformer3DModel, rope_gap: int = DEFAULT_GAP,
                 rope_max_seq_len: int | None = None, context_attention: str = "full",
                 rope_target_start: int | None = None):
        super().__init__()
        if not isinstance(transformer, WanTransformer3DModel):
            raise V4SError(f"V4SModel wraps a diffusers WanTransformer3DModel, got {type(transformer).__name__}")
        if context_attention not in self.ATTENTION:
            raise V4SError(f"context_attention={context_attention!r}: choose one of {self.ATTENTION}")
        self.context_attention = context_attention
        self._reuse = None  # set inside reuse_context()
        self._mask = None  # the masked-attention ContextCache, installed by the first context_only forward
        self.transformer = transformer
        if rope_max_seq_len is not None:
            transformer.register_to_config(rope_max_seq_len=rope_max_seq_len)
        transformer.rope = ContextRoPE.from_rope(transformer.rope, transformer.config.rope_max_seq_len)
        self.rope_gap = rope_gap
        self.rope_target_start = rope_target_start

    @classmethod
    def from_preset(cls, name: str, **kw) -> "V4SModel":
        return cls(WanTransformer3DModel(**transformer_config(name)), **kw)

    @property
    def config(self):
        return self.transformer.config

    @property
    def patch_size(self) -> tuple[int, int, int]:
        return tuple(self.transformer.config.patch_size)

    def layout(self, n_context: int, n_noisy: int, height: int, width: int) -> TokenLayout:
        _, ph, pw = self.patch_size
        if height % ph or width % pw:
            raise V4SError(f"latent size {height}x{width} is not a multiple of the patch {ph}x{pw}")
        return TokenLayout(n_context, n_noisy, (height // ph) * (width // pw))

    def positions(self, context_positions, n_noisy: int, target_positions=None) -> torch.Tensor:
        """Temporal positions of all latent frames: (F,), or (B, F) when each sample has its own context layout."""
        cp = torch.as_tensor([] if context_positions is None else context_positions, dtype=torch.long)
        rows = cp if cp.ndim == 2 else cp.reshape(1, -1)
        if target_positions is None:
            pos = sequence_positions_batch(rows, 1 + n_noisy, self.rope_gap, self.rope_target_start)  # on rows' device
        else:
            tp = torch.as_tensor(target_positions, dtype=torch.long, device=rows.device)
            pos = torch.cat([rows, tp.expand(rows.shape[0], -1) if tp.ndim == 1 else tp], dim=1)
        if pos.shape[-1] != rows.shape[-1] + 1 + n_noisy:
            raise V4SError(f"target_positions must hold 1 + {n_noisy} positions (first + noisy latents)")
        return pos if cp.ndim == 2 else pos[0]

    def check_positions(self, context_positions, n_noisy: int) -> None:
        """Raise V4SError if the sequences of these context positions (B, Fc) leave the RoPE table. The forward
        checks positions that come from the host; positions resident on a GPU are checked here, once for all clips
        (a check in every step would wait for the GPU)."""
        rope = self.transformer.rope
        rope.set_positions(self.positions(torch.as_tensor(context_positions).cpu(), n_noisy))
        rope.set_positions(None)

    def forward(self, context_latents, first_latent, noisy_latents, t, text_emb, context_positions,
                target_positions=None) -> torch.Tensor:
        """Predict (velocity, for flow matching) for `noisy_latents` (B, C, Fn, h, w) given clean conditions.

        context_latents (B, C, Fc, h, w) or None (no context: first-frame-only ablation); first_latent
        (B, C, 1, h, w); t (B,) or a number, in the scheduler's [0, 1000] scale; text_emb (B, L, D);
        context_positions (Fc,) shared by the batch or (B, Fc); target_positions (1 + Fn,) / (B, 1 + Fn) or None
        to continue `rope_gap` after the last context position.
        """
        b, c, n_noisy, h, w = noisy_latents.shape
        if context_latents is None:
            context_latents = noisy_latents.new_zeros(b, c, 0, h, w)
        for name, x in (("context_latents", context_latents), ("first_latent", first_latent)):
            if x.ndim != 5 or x.shape[0] != b or x.shape[1] != c or x.shape[3:] != (h, w):
                raise V4SError(f"{name} has shape {tuple(x.shape)}; expected (B={b}, C={c}, F, {h}, {w}) "
                               "like noisy_latents")
        if first_latent.shape[2] != 1:
            raise V4SError(f"first_latent is the one clean first target latent: (B, C, 1, h, w), got {tuple(first_latent.shape)}")
        if c != self.config.in_channels:
            raise V4SError(f"latents have {c} channels, the transformer expects {self.config.in_channels}: "
                           "use the codec this model was configured for")
        n_context = context_latents.shape[2]
        cp = torch.as_tensor([] if context_positions is None else context_positions, dtype=torch.long)
        if cp.shape[-1] != n_context:
            raise V4SError(f"{cp.shape[-1]} context positions for {n_context} context latents")

        layout = self.layout(n_context, n_noisy, h, w)
        t = torch.as_tensor(t, dtype=torch.float32, device=noisy_latents.device).reshape(-1).expand(b)
        if self._reuse is not None and n_context > 0:
            return self._forward_reusing(context_latents, first_latent, noisy_latents, t, text_emb,
                                         self.positions(cp, n_noisy, target_positions), layout)
        x = torch.cat([context_latents, first_latent, noisy_latents], dim=2)
        masked = self.context_attention == "context_only" and n_context > 0
        if masked or self._mask is not None:  # 0 context tokens = plain attention through the same processor
            self._context_mask(n_context * layout.tokens_per_frame if masked else 0)
        out = self._run(x, self.positions(cp, n_noisy, target_positions), layout.timesteps(t), text_emb)
        return out[:, :, n_context + 1:]

    def _run(self, x, positions, timesteps, text_emb):
        """The diffusers transformer on latent frames `x` at temporal RoPE `positions`, per-token `timesteps`."""
        self.transformer.rope.set_positions(positions)
        try:
            return self.transformer(hidden_states=x.to(self.transformer.dtype), timestep=timesteps,
                                    encoder_hidden_states=text_emb.to(self.transformer.dtype), return_dict=False)[0]
        finally:
            self.transformer.rope.set_positions(None)  # a later plain forward must not reuse this layout

    @contextmanager
    def reuse_context(self):
        """Sampling a "context_only" model: inside this block the context's keys and values are computed by the
        first forward and reused by every later one with the same context and instruction (each denoising step
        of one video), so a step costs only the target's tokens. The same numbers as the masked forward."""
        if self.context_attention != "context_only":
            raise V4SError("reuse_context needs a model trained with context_attention='context_only': with full "
                           "attention the context's keys and values change with the noisy target at every step")
        with ContextCache(self.transformer) as cache:
            self._reuse = {"cache": cache, "key": None}
            try:
                yield self
            finally:
                self._reuse = None

    def _forward_reusing(self, context_latents, first_latent, noisy_latents, t, text_emb, positions, layout):
        state, n_context = self._reuse, context_latents.shape[2]
        n_ctx_tokens = n_context * layout.tokens_per_frame
        timesteps = layout.timesteps(t)
        # the context tokens also read the instruction (cross-attention): the cache belongs to both
        key = state["key"]
        if key is None or any(a.shape != b.shape or not torch.equal(a, b) for a, b in zip(key, (context_latents, text_emb))):
            state["cache"].mode = "fill"
            self._run(context_latents, positions[..., :n_context], timesteps[:, :n_ctx_tokens], text_emb)
            state["key"] = (context_latents.clone(), text_emb.clone())
        state["cache"].mode = "reuse"
        out = self._run(torch.cat([first_latent, noisy_latents], dim=2), positions[..., n_context:],
                        timesteps[:, n_ctx_tokens:], text_emb)
        return out[:, :, 1:]

    def _context_mask(self, n_context_tokens: int) -> None:
        # ContextCache's "masked" mode is that attention pattern in one sequence (the reference its cached
        # fill/reuse modes are tested against), so training and plain sampling share one implementation.
        # It stays installed after the forward: gradient checkpointing recomputes a block's forward during
        # backward, and that recomputation must attend with the same mask (it ran unmasked, or failed, before).
        if self._mask is None:
            self._mask = ContextCache(self.transformer).__enter__()
        self._mask.n_context_tokens = n_context_tokens

    # ---------------------------------------------------------------------------------------------- saving
    def save_pretrained(self, folder, **kw) -> None:
        """The transformer as diffusers saves it (`WanTransformer3DModel.from_pretrained(folder)` loads it),
        plus the V4S settings in `v4s_config.json`."""
        folder = Path(folder)
        self.transformer.save_pretrained(folder, **kw)
        (folder / V4S_CONFIG_NAME).write_text(json.dumps({"rope_gap": self.rope_gap,
                                                          "rope_target_start": self.rope_target_start,
                                                          "context_attention": self.context_attention}, indent=2))

    @classmethod
    def from_pretrained(cls, folder, **kw) -> "V4SModel":
        folder = Path(folder)
        if not (folder / "config.json").exists():
            raise V4SError(f"{folder} holds no saved transformer (config.json missing); save with V4SModel.save_pretrained")
        settings = json.loads((folder / V4S_CONFIG_NAME).read_text()) if (folder / V4S_CONFIG_NAME).exists() else {}
        transformer = WanTransformer3DModel.from_pretrained(folder, **kw)
        kw = {"context_attention": settings["context_attention"]} if "context_attention" in settings else {}
        return cls(transformer, rope_gap=settings.get("rope_gap", DEFAULT_GAP),
                   rope_target_start=settings.get("rope_target_start"), **kw)


# ------------------------------------------------------------------------------------ from a TrainConfig
def build_model(cfg):
    """The V4SModel to train: from a transformer_config name, a factory, or init_from; LoRA if asked."""
    if cfg.context_attention not in V4SModel.ATTENTION:
        raise V4SError(f"context_attention={cfg.context_attention!r}: choose one of {V4SModel.ATTENTION}")
    if ":" in cfg.model:
        model = import_object(cfg.model)(cfg)
    elif cfg.init_from:
        model = V4SModel.from_pretrained(cfg.init_from)
        rope = pretrained_overrides(cfg)
        if rope:  # a longer table for long scans; the trained weights do not depend on its length
            model.transformer.register_to_config(rope_max_seq_len=rope)
            model.transformer.rope = ContextRoPE.from_rope(model.transformer.rope, rope)
    else:
        config = {**transformer_config(cfg.model), **cfg.model_overrides}
        try:
            model = V4SModel(WanTransformer3DModel(**config))
        except TypeError as e:
            raise V4SError(f"model_overrides {cfg.model_overrides}: {e}; use WanTransformer3DModel's argument names") from None
    model.context_attention = cfg.context_attention  # the config decides, also over an init_from folder's setting
    model.rope_target_start = rope_target_start(cfg)  # so does the RoPE target rule
    if cfg.lora_rank > 0:
        add_lora(model, cfg)
        if cfg.wan is not None and cfg.wan.fp8_base:  # training only: sampling rebuilds with lora_rank=0 (bf16 base)
            fp8_base(model.transformer, device=get_device(cfg.device))
    if cfg.gradient_checkpointing:
        model.transformer.enable_gradient_checkpointing()
    return model


def rope_target_start(cfg) -> int | None:
    """cfg.rope_target -> V4SModel.rope_target_start: None for "after_context", the clip's scan end + gap for
    "after_scan" (rope.py explains both rules)."""
    if cfg.rope_target == "after_context":
        return None
    return target_start_after_scan(get_clip_config(cfg.clip).scan_frames)


def pretrained_overrides(cfg) -> int | None:
    """model_overrides a pretrained transformer (init_from, the Wan2.2 factory) can take: only rope_max_seq_len,
    the RoPE table's length (raise it for long scans; weights do not depend on it). Anything else would change the
    architecture of weights already trained, so it is refused rather than silently ignored."""
    over = dict(cfg.model_overrides)
    rope = over.pop("rope_max_seq_len", None)
    if over:
        raise V4SError(f"model_overrides {sorted(over)} cannot change a pretrained transformer (init_from / wan:); "
                       "only rope_max_seq_len applies (a longer RoPE table for long scans)")
    return rope


def add_lora(model, cfg):
    """peft LoRA on the attention and FFN projections; everything else is frozen."""
    from peft import LoraConfig

    model.requires_grad_(False)
    model.transformer.add_adapter(LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha or cfg.lora_rank,
                                             target_modules=list(cfg.lora_targets), init_lora_weights=True))
    for name, p in model.transformer.named_parameters():
        p.requires_grad_("lora_" in name)
    # the adapter trains in fp32 over a bf16 (or fp16) base: small updates to bf16 weights round away. Only the
    # trainable (LoRA) parameters are cast; the frozen base keeps its dtype (diffusers' stock helper)
    from diffusers.training_utils import cast_training_params

    cast_training_params(model.transformer, dtype=torch.float32)
    return model


def lora_input_casts(model, autocast: bool):
    """A context in which peft does not cast each adapter's input to the adapter's dtype when `autocast` is on.

    The adapter trains in fp32 (add_lora), so peft casts its bf16 input to fp32, and autocast casts it straight back
    to bf16 for the matmul: a round trip of the activations through fp32 at every adapted layer, with the same
    numbers as no round trip. torch.compile removes the pair (inductor's pointless_convert); an eager step pays it
    (+9% of the bytes a Wan2.2-5B block writes in a LoRA training step, counted in results/cpu_2026-12-05b). Without
    autocast the cast is what makes fp32 adapters work on a bf16 base, so it stays."""
    from peft.helpers import disable_input_dtype_casting

    return disable_input_dtype_casting(model, active=autocast)

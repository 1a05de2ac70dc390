"""A video from a run: the one entrance (`v4s sample`, `v4s eval --checkpoint`, the tables, tools, notebooks).

    pipe = V4SPipeline.from_pretrained("runs/lite/step_003000", device="cuda")
    samples = pipe(pipe.load_example("data/lite/val/grounding_000000"), SamplingSettings(scale=5), tries=3)
    samples[0].frames, samples[0].boxes            # uint8 (Ft, H, W, 3), the detected red box per frame

In diffusers' style (`WanPipeline.from_pretrained(...)(prompt, ...)`): the components (model, codec, text
encoder) and the clip shape are built once from a run folder by `checkpoints.load_model` (the run folder's one
reader) and `config.inference_clip_config`; `__call__` takes one example and the sampling settings. Underneath it
is `sample.sample_clip` (encode with `latents.encode_clip`, `generate`, decode, read the boxes), the lower-level
path notebooks 05-07 teach.
"""
from __future__ import annotations

from pathlib import Path

from .sample import SamplingSettings, load_example, sample_clip
from .utils import V4SError, get_device


class V4SPipeline:
    """model + codec + text encoder + the run's config and clip shape; `__call__(example, settings, tries, seed)`.

    A plain class, not a `diffusers.DiffusionPipeline` subclass: DiffusionPipeline's `from_pretrained` /
    `save_pretrained` read and write a `model_index.json` folder of registered diffusers/transformers modules,
    while ours come from a training run folder (`trainer_state.json` + `transformer/` or a LoRA file, codecs built
    from the run's config) and the lite codec and text encoder are not modules it can register or save. The
    scheduler is not a component either: it is built per call from `SamplingSettings` (a solver keeps state, and
    the settings are what a user varies).
    """

    def __init__(self, model, codec, text_encoder, clip_config, config=None, device="cpu"):
        self.model, self.codec, self.text_encoder = model, codec, text_encoder
        self.clip_config, self.config, self.device = clip_config, config, get_device(str(device))

    @classmethod
    def from_pretrained(cls, path, device="auto", ema: bool = True, clip_config=None) -> "V4SPipeline":
        """A training checkpoint step_XXXXXX/ (full or LoRA, EMA weights by default), an exported or a plain saved
        V4SModel folder (lite codecs). clip_config: the shape to sample at (a preset name or ClipConfig; default
        the run's inference shape: a paper_train run samples at paper, a plain model folder at lite)."""
        from .checkpoints import load_model
        from .config import inference_clip_config

        device = get_device(str(device))
        model, codec, text_encoder, cfg = load_model(path, ema=ema, device=device)
        clip_cfg = inference_clip_config(cfg.clip if cfg is not None else "lite", clip_config)
        return cls(model, codec, text_encoder, clip_cfg, cfg, device)

    def load_example(self, folder, sampling: str = "noncontiguous", seed: int = 0) -> dict:
        """One clip folder's ClipDataset item at this pipeline's clip shape (its context chunks drawn as its dataset
        would draw them with `seed`)."""
        return load_example(folder, self.clip_config, sampling, seed)

    def __call__(self, example: dict, settings: SamplingSettings | None = None, tries: int = 1, seed: int = 0,
                 drop_context: bool = False) -> list:
        """`tries` target videos for one ClipDataset item (seeds seed, seed + 1, ...) -> list of `sample.Sample`
        (`frames` uint8 (Ft, H, W, 3), `boxes` (Ft, 4) the detected red box, NaN where none, `confidence`,
        `latents`). settings: SamplingSettings (default its defaults; shift None = the run's flow_shift).
        drop_context: Gaussian noise for the context, as training drops it (the "first frame only" input)."""
        settings = settings if settings is not None else SamplingSettings()
        if not isinstance(settings, SamplingSettings):
            raise V4SError(f"settings must be a sample.SamplingSettings, got {type(settings).__name__}; e.g. "
                           "SamplingSettings(guidance='joint', scale=5)")
        return sample_clip(self.model, self.codec, self.text_encoder, example, self.clip_config, tries=tries, seed=seed,
                           device=self.device, drop_context=drop_context, **settings.for_run(self.config).generate_kwargs())

    def __repr__(self):
        run = self.config.clip_name if self.config is not None else "model folder"
        return (f"V4SPipeline({type(self.model).__name__}, {type(self.codec).__name__}, "
                f"{type(self.text_encoder).__name__}, clip {self.clip_config.width}x{self.clip_config.height}, "
                f"trained at {run}, device {self.device})")

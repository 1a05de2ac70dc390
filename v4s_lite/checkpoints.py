"""The run folder, one owner (notebooks 05 and 06): what training writes and everything that reads it back.

    run_dir/config.yaml, loss.jsonl, loss.png            (train.py)
    run_dir/step_XXXXXX/transformer/                     V4SModel.save_pretrained (full weights), or
                        transformer_lora/                the LoRA adapter as WanPipeline.save_lora_weights writes it,
                                                         so `WanPipeline.load_lora_weights(that folder)` loads it
                        transformer_ema/                 the EMA weights, same layout
                        training_state.pt                optimizer, lr scheduler, EMA, torch RNG
                        trainer_state.json               step and the TrainConfig (asdict)

    save_checkpoint      write one step folder atomically (training)
    load_checkpoint      load one into existing model/optimizer/scheduler/EMA objects (resume)
    list_checkpoints, latest_checkpoint, nearest_checkpoint
    rotate_checkpoints   delete all but the last K (and the steps to keep) after a save (TrainConfig.keep_checkpoints)
    read_config          the TrainConfig a checkpoint was trained with
    load_model           (model, codec, text_encoder, cfg) for sampling, full or LoRA weights, EMA by default
    save_lora            a transformer's adapter in diffusers' pipeline LoRA format (checkpoints and `v4s export`)
    export               one checkpoint's weights as diffusers loads them: `v4s export STEP_DIR --out DIR`
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import torch

from .codec import LiteCodec, LiteTextEncoder, build_codecs
from .config import TrainConfig, config_from_dict
from .model import V4SModel, build_model
from .utils import TrainingDiverged, V4SError

TRANSFORMER_DIR, LORA_DIR, EMA_DIR = "transformer", "transformer_lora", "transformer_ema"
EXPORT_INFO = "v4s_export.json"  # what `export` records beside the weights (step, base, clip shape, box frames)
STATE_FILE, META_FILE = "training_state.pt", "trainer_state.json"
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"  # diffusers' name: load_lora_adapter(folder, weight_name=...)


def _is_lora(transformer) -> bool:
    return bool(getattr(transformer, "peft_config", None))


# ---------------------------------------------------------------------------------------------------- LoRA
PREFIX = "transformer."  # diffusers' pipeline LoRA files name the transformer's keys "transformer.<module>..."


def save_lora(transformer, folder, adapter_name: str = "default") -> Path:
    """The adapter as `WanPipeline.save_lora_weights` writes it (peft's state dict under the "transformer."
    prefix): `WanPipeline.load_lora_weights(folder)` and `transformer.load_lora_adapter(folder, prefix="transformer")`
    load it. Checkpoints use it, so a checkpoint's adapter folder is already what diffusers loads."""
    from diffusers import WanPipeline
    from peft.utils import get_peft_model_state_dict

    transformer = getattr(transformer, "transformer", transformer)  # a V4SModel or the bare diffusers model
    if not _is_lora(transformer) or adapter_name not in transformer.peft_config:
        raise V4SError(f"the transformer carries no LoRA adapter named {adapter_name!r}: train one first "
                       f"(v4s train with lora_rank > 0) or add one with model.add_lora(model, cfg)")
    state = get_peft_model_state_dict(transformer, adapter_name=adapter_name)
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    folder = Path(folder)
    WanPipeline.save_lora_weights(str(folder), transformer_lora_layers=state, weight_name=LORA_WEIGHTS,
                                  safe_serialization=True)
    return folder


def _lora_state(folder) -> dict:
    """The adapter file's tensors with peft's key names (the prefix dropped), for set_peft_model_state_dict."""
    from safetensors.torch import load_file

    state = load_file(Path(folder) / LORA_WEIGHTS)
    return {k[len(PREFIX):] if k.startswith(PREFIX) else k: v for k, v in state.items()}


def _load_lora_for_sampling(transformer, folder) -> None:
    """Add the adapter through diffusers' own loader, and refuse (not silently skip) a file it does not fit."""
    from safetensors.torch import load_file

    keys = list(load_file(Path(folder) / LORA_WEIGHTS))
    prefix = "transformer" if keys and all(k.startswith(PREFIX) for k in keys) else None  # runs saved before 12/02
    transformer.load_lora_adapter(str(folder), prefix=prefix, weight_name=LORA_WEIGHTS)
    if not _is_lora(transformer):
        raise V4SError(f"{folder}: diffusers loaded no LoRA layer from {len(keys)} tensors (first key "
                       f"{keys[:1]}); the adapter does not fit this base model (another lora_targets or model?)")


def save_checkpoint(run_dir, step: int, model, optimizer=None, lr_scheduler=None, ema=None,
                    cfg: TrainConfig | None = None, weights: dict | None = None) -> Path:
    """`run_dir/step_XXXXXX/`: transformer/ (diffusers save_pretrained; LoRA: transformer_lora/ via peft's
    state dict), transformer_ema/, training_state.pt (optimizer, lr scheduler, EMA, RNG: loaded with weights_only=True
    loads it) and trainer_state.json (step, config). Written to a temporary folder, then renamed, so a crash
    mid-save never leaves a half checkpoint that --resume would pick.
    weights: the model's whole state dict when its own parameters are shards (FSDP: accelerator.get_state_dict,
    called on every process, gathers it on the main one); saved in the same layout (full fine-tuning only)."""
    run_dir = Path(run_dir)
    final = run_dir / f"step_{step:06d}"
    tmp = run_dir / f".step_{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if not all(torch.isfinite(p).all() for p in (weights.values() if weights is not None else model.parameters())):
        raise TrainingDiverged(f"refusing to save step {step}: the weights hold NaN/inf")
    transformer = model.transformer
    if weights is not None:
        if _is_lora(transformer) or ema is not None:
            raise V4SError("save_checkpoint(weights=...) saves whole weights only: no LoRA, no EMA")
        with _state_dict_of(transformer, _strip(weights, "transformer.")):
            model.save_pretrained(tmp / TRANSFORMER_DIR)
    elif _is_lora(transformer):
        save_lora(transformer, tmp / LORA_DIR)
    else:
        model.save_pretrained(tmp / TRANSFORMER_DIR)  # diffusers' layout + V4SModel's small v4s_config.json
    if ema is not None:
        trainable = [p for p in model.parameters() if p.requires_grad]
        ema.store(trainable)
        ema.copy_to(trainable)
        save_lora(transformer, tmp / EMA_DIR) if _is_lora(transformer) else model.save_pretrained(tmp / EMA_DIR)
        ema.restore(trainable)
    state = {"step": step, "torch_rng": torch.get_rng_state()}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if lr_scheduler is not None:
        state["lr_scheduler"] = lr_scheduler.state_dict()
    if ema is not None:
        state["ema"] = ema.state_dict()
    torch.save(state, tmp / STATE_FILE)
    meta = {"step": step, "config": asdict(cfg) if cfg is not None else None}
    (tmp / META_FILE).write_text(json.dumps(meta, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def _strip(state: dict, prefix: str) -> dict:
    """The keys under `prefix` (a V4SModel's `transformer.`), without it."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


@contextlib.contextmanager
def _state_dict_of(module, state: dict):
    """module.state_dict() returns `state` for a while (diffusers' save_pretrained reads the weights through it)."""
    module.state_dict = lambda *a, **k: state
    try:
        yield
    finally:
        del module.state_dict


def list_checkpoints(run_dir) -> list[Path]:
    """The run's step_XXXXXX checkpoint folders, oldest first."""
    return sorted(Path(run_dir).glob("step_[0-9][0-9][0-9][0-9][0-9][0-9]"))


def latest_checkpoint(run_dir) -> Path | None:
    steps = list_checkpoints(run_dir)
    return steps[-1] if steps else None


def nearest_checkpoint(run_dir, step: int | None = None) -> Path:
    """The run's latest checkpoint, or the one nearest to `step` (the earlier one on a tie)."""
    steps = list_checkpoints(run_dir)
    if not steps:
        raise V4SError(f"{run_dir}: no step_XXXXXX checkpoint; train it first (v4s train CONFIG)")
    return steps[-1] if step is None else min(steps, key=lambda s: (abs(int(s.name[5:]) - step), int(s.name[5:])))


def rotate_checkpoints(run_dir, keep_last: int, keep_steps=(), current: int | None = None) -> list[Path]:
    """Delete the run's checkpoints except the `keep_last` latest, those of `keep_steps` and the one of `current`
    (the one just written: a resume from an earlier step may leave later folders behind, which must not crowd
    it out). keep_last=0 keeps everything. Returns the folders deleted, oldest first."""
    if keep_last < 0:
        raise V4SError(f"keep_last={keep_last} must be >= 0 (0 keeps every checkpoint)")
    if keep_last == 0:
        return []
    steps = list_checkpoints(run_dir)
    keep = set(steps[-keep_last:]) | {s for s in steps if int(s.name[5:]) in set(keep_steps)}
    if current is not None:
        keep.add(Path(run_dir) / f"step_{current:06d}")
    gone = [s for s in steps if s not in keep]
    for s in gone:
        shutil.rmtree(s)
    return gone


def read_config(path) -> TrainConfig | None:
    """The TrainConfig saved with a step_XXXXXX checkpoint (None when it was saved without one)."""
    path = Path(path)
    if not (path / META_FILE).exists():
        raise V4SError(f"{path} is not a training checkpoint (no {META_FILE}); pass a step_XXXXXX folder")
    saved = json.loads((path / META_FILE).read_text())["config"]
    return None if saved is None else config_from_dict(saved, path / META_FILE)


def load_checkpoint(path, model, optimizer=None, lr_scheduler=None, ema=None) -> int:
    """Load what save_checkpoint wrote into existing objects; returns the step."""
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / META_FILE).exists():
        raise V4SError(f"{path} is not a training checkpoint (no {META_FILE}); pass a step_XXXXXX folder "
                       "or the run folder that holds them")
    transformer = model.transformer
    if _is_lora(transformer):
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(transformer, _lora_state(path / LORA_DIR))
        if getattr(result, "unexpected_keys", None):
            raise V4SError(f"checkpoint {path}: its adapter does not fit this model (unexpected "
                           f"{result.unexpected_keys[:3]}); was it trained with other lora_targets?")
    else:
        files = sorted((path / TRANSFORMER_DIR).glob("*.safetensors"))
        state = {}
        for f in files:
            state.update(load_file(f))
        missing, unexpected = transformer.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise V4SError(f"checkpoint {path} does not fit this model: missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}; was it trained with another `model` config?")
    state = torch.load(path / STATE_FILE, weights_only=True)
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if lr_scheduler is not None:
        lr_scheduler.load_state_dict(state["lr_scheduler"])
    if ema is not None:
        ema.load_state_dict(state["ema"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"])


def load_model(path, ema: bool = True, device="cpu"):
    """(model, codec, text_encoder, train_config) from a training checkpoint step_XXXXXX/ (full or LoRA; the
    EMA weights when saved and `ema`), or (model, lite codecs, None) from a plain V4SModel.save_pretrained folder."""
    path = Path(path)
    if (path / META_FILE).exists():
        cfg = read_config(path)
        if cfg is None:
            raise V4SError(f"{path} was saved without its training config, so its model cannot be rebuilt; "
                           "save checkpoints through train() or save_checkpoint(..., cfg=cfg)")
        if (path / LORA_DIR).exists():  # the base model as configured, then the adapter through diffusers
            model = build_model(dataclasses.replace(cfg, lora_rank=0))
            _load_lora_for_sampling(model.transformer, path / (EMA_DIR if ema and (path / EMA_DIR).exists() else LORA_DIR))
        else:
            model = V4SModel.from_pretrained(path / (EMA_DIR if ema and (path / EMA_DIR).exists() else TRANSFORMER_DIR))
            model.context_attention = cfg.context_attention  # trained that way, so sampled that way
        # the codecs of the run (a Wan run: its VAE and text encoder from wan.source) on the sampling device
        codec, text_encoder = build_codecs(dataclasses.replace(cfg, device=str(device)))
    elif (path / "config.json").exists():  # computed in float32 whatever the stored precision (a bf16 export)
        model, codec, text_encoder, cfg = V4SModel.from_pretrained(path).float(), LiteCodec(), LiteTextEncoder(), None
    else:
        raise V4SError(f"{path} is neither a training checkpoint (step_XXXXXX/ with trainer_state.json) nor a "
                       "saved V4SModel (config.json); pass e.g. runs/quick/step_000150")
    if torch.device(device).type != "cpu":
        model = model.to(device)
    return model.eval(), codec, text_encoder, cfg


# -------------------------------------------------------------------------------------------------- export
def export(path, out, ema: bool = True, dtype: str | None = None, max_shard_size: str | None = None) -> Path:
    """One checkpoint's weights as diffusers loads them, with the settings to use them:

        LoRA run:  out/pytorch_lora_weights.safetensors  -> WanPipeline(...).load_lora_weights(out)
        full run:  out/ (config.json + weights)           -> WanTransformer3DModel.from_pretrained(out)
        both:      out/v4s_export.json                    (step, base model, clip shape, how to load)

    ema: the EMA weights when the checkpoint has them (what `v4s sample` uses by default).
    dtype ("bf16" | "fp16") / max_shard_size (e.g. "15MB"): a full run's weights re-saved in that precision and in
    shards of at most that size (diffusers' sharded format; from_pretrained loads it), e.g. to ship a model that
    stays under a size limit. load_model computes in float32 whatever the stored precision."""
    path, out = Path(path), Path(out)
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}
    if dtype not in dtypes:
        raise V4SError(f"export dtype={dtype!r}: choose bf16, fp16 or leave it out (the saved precision)")
    cfg = read_config(path)
    src = EMA_DIR if ema and (path / EMA_DIR).exists() else None
    out.mkdir(parents=True, exist_ok=True)
    if (path / LORA_DIR).exists() and (dtype or max_shard_size):
        raise V4SError("export dtype / max_shard_size re-save a full run's weights; a LoRA adapter is copied as "
                       "trained (fp32, a few hundred MB at most): leave them out")
    if (path / LORA_DIR).exists():
        shutil.copy2(path / (src or LORA_DIR) / LORA_WEIGHTS, out / LORA_WEIGHTS)
        base = cfg.wan.source if cfg is not None and cfg.wan is not None else "the run's base model"
        how = f"WanPipeline.from_pretrained({base!r}).load_lora_weights({str(out)!r})"
    elif (path / TRANSFORMER_DIR).exists() and (dtype or max_shard_size):
        model = V4SModel.from_pretrained(path / (src or TRANSFORMER_DIR))
        model.to(dtypes[dtype] or next(model.parameters()).dtype).save_pretrained(
            out, **({"max_shard_size": max_shard_size} if max_shard_size else {}))
        how = f"WanTransformer3DModel.from_pretrained({str(out)!r}) (V4SModel.from_pretrained keeps the RoPE settings)"
    elif (path / TRANSFORMER_DIR).exists():
        for f in (path / (src or TRANSFORMER_DIR)).iterdir():
            shutil.copy2(f, out / f.name)
        how = f"WanTransformer3DModel.from_pretrained({str(out)!r}) (V4SModel.from_pretrained keeps the RoPE settings)"
    else:
        raise V4SError(f"{path} holds neither {LORA_DIR}/ nor {TRANSFORMER_DIR}/: not a complete checkpoint")
    info = {"checkpoint": str(path), "step": json.loads((path / META_FILE).read_text())["step"],
            "weights": "ema" if src else "raw", "load_with": how,
            "wan_source": cfg.wan.source if cfg is not None and cfg.wan is not None else None,
            "clip": cfg.clip if cfg is None or isinstance(cfg.clip, str) else cfg.clip.to_dict(),
            "context_attention": None if cfg is None else cfg.context_attention,
            # whether the model marks its target with red box frames (the box ablation trains without): the judge
            # asks a box only of a model that draws one (evaluate.score_clip(marked=))
            "box_frames": None if cfg is None else bool(cfg.box_frames)}
    (out / EXPORT_INFO).write_text(json.dumps(info, indent=1))
    return out


def export_info(path) -> dict | None:
    """The settings `export` recorded in a model folder (EXPORT_INFO), or None for a folder it did not write."""
    info = Path(path) / EXPORT_INFO
    return json.loads(info.read_text()) if info.is_file() else None


def add_cli(subparsers):
    p = subparsers.add_parser("export", help="a checkpoint's weights as diffusers loads them (LoRA: for "
                                             "WanPipeline.load_lora_weights)")
    p.add_argument("checkpoint", help="a step_XXXXXX folder (or a run folder: its latest checkpoint)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-ema", action="store_true", help="the raw weights even when EMA weights were saved")
    p.add_argument("--dtype", choices=["bf16", "fp16"], help="re-save a full run's weights in this precision")
    p.add_argument("--max-shard-size", help="re-save a full run's weights in shards of at most this size, e.g. 15MB")
    p.set_defaults(func=_cli_export)


def _cli_export(args):
    path = Path(args.checkpoint)
    if not (path / META_FILE).exists() and list_checkpoints(path):
        path = latest_checkpoint(path)
    out = export(path, args.out, ema=not args.no_ema, dtype=args.dtype, max_shard_size=args.max_shard_size)
    print(f"exported {path.name} to {out}: {export_info(out)['load_with']}")
    return 0

"""The run folder, one owner (notebooks 05 and 06): what training writes and everything that reads it back.

    run_dir/config.yaml, loss.jsonl, loss.png            (train.py)
    run_dir/step_XXXXXX/transformer/                     V4SModel.save_pretrained (full weights), or
                        transformer_lora/                peft's LoRA state dict in diffusers' file name
                        transformer_ema/                 the EMA weights, same layout
                        training_state.pt                optimizer, lr scheduler, EMA, torch RNG
                        trainer_state.json               step and the TrainConfig (asdict)

    save_checkpoint      write one step folder atomically (training)
    load_checkpoint      load one into existing model/optimizer/scheduler/EMA objects (resume)
    list_checkpoints, latest_checkpoint, nearest_checkpoint
    rotate_checkpoints   delete all but the last K (and the steps to keep) after a save (TrainConfig.keep_checkpoints)
    read_config          the TrainConfig a checkpoint was trained with
    load_model           (model, codec, text_encoder, cfg) for sampling, full or LoRA weights, EMA by default
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import torch

from .codec import LiteCodec, LiteTextEncoder, build_codecs
from .config import TrainConfig
from .model import V4SModel, build_model
from .utils import TrainingDiverged, V4SError

TRANSFORMER_DIR, LORA_DIR, EMA_DIR = "transformer", "transformer_lora", "transformer_ema"
STATE_FILE, META_FILE = "training_state.pt", "trainer_state.json"
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"  # diffusers' name: load_lora_adapter(folder, weight_name=...)


def _is_lora(transformer) -> bool:
    return bool(getattr(transformer, "peft_config", None))


def save_checkpoint(run_dir, step: int, model, optimizer=None, lr_scheduler=None, ema=None,
                    cfg: TrainConfig | None = None) -> Path:
    """`run_dir/step_XXXXXX/`: transformer/ (diffusers save_pretrained; LoRA: transformer_lora/ via peft's
    state dict), transformer_ema/, training_state.pt (optimizer, lr scheduler, EMA, RNG: loaded with weights_only=True
    loads it) and trainer_state.json (step, config). Written to a temporary folder, then renamed, so a crash
    mid-save never leaves a half checkpoint that --resume would pick."""
    run_dir = Path(run_dir)
    final = run_dir / f"step_{step:06d}"
    tmp = run_dir / f".step_{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise TrainingDiverged(f"refusing to save step {step}: the weights hold NaN/inf")
    transformer = model.transformer
    if _is_lora(transformer):
        transformer.save_lora_adapter(tmp / LORA_DIR, weight_name=LORA_WEIGHTS)  # peft's get_peft_model_state_dict
    else:
        model.save_pretrained(tmp / TRANSFORMER_DIR)  # diffusers' layout + V4SModel's small v4s_config.json
    if ema is not None:
        trainable = [p for p in model.parameters() if p.requires_grad]
        ema.store(trainable)
        ema.copy_to(trainable)
        (transformer.save_lora_adapter(tmp / EMA_DIR, weight_name=LORA_WEIGHTS) if _is_lora(transformer)
         else model.save_pretrained(tmp / EMA_DIR))
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
    return None if saved is None else TrainConfig(**saved)


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

        set_peft_model_state_dict(transformer, load_file(path / LORA_DIR / LORA_WEIGHTS))
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
            adapter = path / (EMA_DIR if ema and (path / EMA_DIR).exists() else LORA_DIR)
            model.transformer.load_lora_adapter(str(adapter), prefix=None, weight_name=LORA_WEIGHTS)
        else:
            model = V4SModel.from_pretrained(path / (EMA_DIR if ema and (path / EMA_DIR).exists() else TRANSFORMER_DIR))
            model.context_attention = cfg.context_attention  # trained that way, so sampled that way
        codec, text_encoder = build_codecs(cfg)
    elif (path / "config.json").exists():
        model, codec, text_encoder, cfg = V4SModel.from_pretrained(path), LiteCodec(), LiteTextEncoder(), None
    else:
        raise V4SError(f"{path} is neither a training checkpoint (step_XXXXXX/ with trainer_state.json) nor a "
                       "saved V4SModel (config.json); pass e.g. runs/quick/step_000150")
    if torch.device(device).type != "cpu":
        model = model.to(device)
    return model.eval(), codec, text_encoder, cfg

#!/usr/bin/env bash
# The instructor's Wan2.2-TI2V-5B path on one GPU at the true size, offline: random weights of the exact architecture
# (v4s wan-random: transformer 5.0 B, Wan2.2 VAE, UMT5-XXL encoder, an offline tokenizer), so wall times and memory are
# real while the videos are noise. Phases each fit one 10-minute device call; a warm machine keeps the ignored folders
# models/, data/paper/ and runs/ between calls, so the phases follow each other:
#   bash tools/gpu_wan.sh prepare OUT [N]          # the random 5B folder, N training clips + 1 validation clip
#                                                   # at the paper's shape (GPU renderer), `v4s train --encode-only`
#   bash tools/gpu_wan.sh train OUT SECS STEPS     # `v4s wan-train` stopped by SIGINT after SECS s (it saves a checkpoint;
#                                                   # SECS=90 stops 220 steps near step 80 on an H200: 28 s start-up, 0.72 s/step),
#                                                   # then `--resume` to STEPS
#   bash tools/gpu_wan.sh interrupt OUT SECS STEPS / resume OUT STEPS   # the two halves of `train`, e.g. in two calls
#   [TAG=_x LOG_EVERY=10] bash tools/gpu_wan.sh lowmem OUT SECS [--set K=V ...]  # configs/wan22_ti2v_5b_24gb.yaml
#                                                   # trained for SECS s: its s per step and peak memory
#                                                   # (OUT/loss_24gb.jsonl); the full loop's step, where bench_wan.py
#                                                   # times the bare step. The FP8 base at the 24 GB pick:
#                                                   # ... lowmem OUT 120 --set wan.fp8_base=true --set wan.checkpointing=22
#   bash tools/gpu_wan.sh sample OUT [STEPS]       # `v4s export`, stock WanPipeline.load_lora_weights, `v4s sample` and
#                                                   # `v4s eval --checkpoint` at the inference shape (337 + 181 frames)
#   bash tools/gpu_wan.sh score OUT [STEPS]        # `v4s eval --checkpoint` alone (generate + judge), timed
#   bash tools/gpu_wan.sh path OUT SECS STEPS [SAMPLE_STEPS]  # the whole path in one call (a machine does not outlive
#                                                   # a call): prepare 1 clip, train (SIGINT after SECS s), resume to
#                                                   # STEPS, export + the stock pipeline check, `v4s eval --checkpoint`
#                                                   # (a 337 + 181-frame video with joint CFG, then scored)
# WAN_CFG: the config trained (default configs/wan22_ti2v_5b.yaml; the 24 GB pick: configs/wan22_ti2v_5b_24gb.yaml with
# WAN_SET="--set wan.fp8_base=true --set wan.checkpointing=22"); CLIP_DEVICE: where make-data renders (default the
# GPU; cpu: processes beside the GPU work, 36 s per paper clip on one core); EVAL_FLAGS: more `v4s eval` options for
# `score` (e.g. --fp8 for a run trained with the FP8 base).
# Every command is a plain `v4s ...` line, printed to OUT/commands.txt. Seeds: training clips k*1,000 (k < N; make-data
# steps past a seed whose room is held out for OOD, so adjacent seeds could write the same folder: 3 clips from 4 seeds
# in results/gpu_2026-12-03c) (the training
# range of docs/DATA.md), the validation clip 300000.
set -uo pipefail
PHASE=${1:?phase}; OUT=${2:?out dir}; shift 2
export PYTHONUNBUFFERED=1
mkdir -p $OUT models data/paper runs
t0=$(date +%s)
stamp() { echo "$1: $(( $(date +%s)-t0 )) s" | tee -a $OUT/summary.txt; }
run() { echo "$*" >> $OUT/commands.txt; "$@"; }
speed() {  # speed RUN LABEL WHERE: the run's steps, s per step (second half of its log) and peak memory, to summary.txt
  python3 - "$@" <<'EOF' | tee -a $OUT/summary.txt
import os, sys
from v4s_lite.train import read_log, seconds_per_step
run, what, where = sys.argv[1:4]
log = read_log(run) if os.path.exists(f"{run}/loss.jsonl") else []
print(f"{what}: no step logged (the reason is in {where})" if not log else
      f"{what}: {log[-1]['step']} steps, {seconds_per_step(log):.3f} s per step over the second half, "
      f"peak {max(r.get('peak_gib', 0) for r in log):.1f} GiB")
EOF
}
V4S="python3 -m v4s_lite.cli"
SIZE=${WAN_SIZE:-5b}; DEV=${WAN_DEVICE:-cuda}   # WAN_SIZE=tiny WAN_DEVICE=cpu: a dry run of this script on a CPU
# (with WAN_SET="--set device=cpu --set mixed_precision=no --set wan.compile=false --set wan.checkpointing=1")
WAN=models/wan22_random_$SIZE
CFG=${WAN_CFG:-configs/wan22_ti2v_5b.yaml}
CDEV=${CLIP_DEVICE:-$DEV}
SET=(--set wan.source=$WAN --set data_root=data/paper/train --set latent_cache=data/paper/latents
     --set out_dir=runs/wan5b --set progress=false --set log_every=10 --set checkpoint_every=50 ${WAN_SET:-})
case $PHASE in
prepare)
  N=${1:-4}
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee $OUT/gpu.txt || true
  # the clips render while the random weights are made and saved (independent; the renders use little of the GPU)
  [ "$(ls data/paper/train 2>/dev/null | wc -l)" -ge $(( N < 3 ? N : 3 )) ] || for k in $(seq 0 $((N-1))); do
    run $V4S make-data --task grounding --scenes 1 --seed $((k*1000)) --clip-config paper --device $CDEV \
      --out data/paper/train --no-progress > /dev/null 2>> $OUT/errors.log &
  done
  [ -d data/paper/val ] || run $V4S make-data --task grounding --scenes 1 --seed 300000 --clip-config paper --device $CDEV \
    --out data/paper/val --no-progress > /dev/null 2>> $OUT/errors.log &
  [ -f $WAN/model_index.json ] || run $V4S wan-random $WAN --size $SIZE --device $DEV
  du -sh $WAN/* | tee -a $OUT/summary.txt
  stamp "random 5B folder"
  wait
  stamp "clips ($(ls data/paper/train | wc -l) training, $(ls data/paper/val | wc -l) validation)"
  run $V4S train $CFG "${SET[@]}" --encode-only 2>&1 | grep -v -i warn | tail -n 3 | tee -a $OUT/summary.txt
  stamp "encoded (VAE + UMT5-XXL on the GPU, then freed)"
  ;;
train)
  bash $0 interrupt $OUT "$@" && bash $0 resume $OUT $2
  ;;
interrupt)
  SECS=${1:?seconds before the interrupt}; STEPS=${2:?steps}
  run timeout -s INT $SECS $V4S wan-train $CFG "${SET[@]}" --set steps=$STEPS 2>&1 | grep -v -i warn \
    | tail -n 12 | tee $OUT/train_part1.log
  stamp "wan-train interrupted (SIGINT after $SECS s)"
  ls runs/wan5b | tee -a $OUT/summary.txt
  cp runs/wan5b/loss.jsonl $OUT/loss_part1.jsonl
  ;;
resume)
  STEPS=${1:?steps}
  run $V4S wan-train $CFG "${SET[@]}" --set steps=$STEPS --resume 2>&1 | grep -v -i warn | tail -n 5 \
    | tee $OUT/train_part2.log
  stamp "wan-train resumed to $STEPS steps"
  cp runs/wan5b/loss.jsonl $OUT/loss.jsonl
  ls runs/wan5b | tee -a $OUT/summary.txt
  ;;
lowmem)
  SECS=${1:?seconds}; shift  # the rest: more --set overrides (e.g. wan.fp8_base=true)
  # TAG names this run's files (several lowmem runs in one call); LOG_EVERY: 1 reads the loss every step (a host
  # sync per step), 10 as `path` trains; a `--set profile_steps=N` run's profile summary comes back too
  T=${TAG:-}; rm -rf runs/wan5b_24gb  # each lowmem run measures from its own start
  run timeout -s INT $SECS $V4S wan-train configs/wan22_ti2v_5b_24gb.yaml "${SET[@]}" --set out_dir=runs/wan5b_24gb \
    --set steps=1000 --set checkpoint_every=100000 --set log_every=${LOG_EVERY:-1} "$@" 2>&1 | grep -v -i warn \
    | tail -n 24 | tee $OUT/train_24gb$T.log
  cp runs/wan5b_24gb/loss.jsonl $OUT/loss_24gb$T.jsonl 2>/dev/null
  cp runs/wan5b_24gb/profile/summary.txt $OUT/profile_24gb$T.txt 2>/dev/null
  speed runs/wan5b_24gb "24 GB config${*:+ $*}" train_24gb$T.log
  stamp "24 GB config trained for $SECS s${T:+ ($T)}"
  ;;
export)  # `v4s export`, then diffusers' own pipeline loads the exported adapter and computes what the course's
  # model rebuilt from the run folder does
  CKPT=$(ls -d runs/wan5b/step_* | tail -n 1)
  run $V4S export $CKPT --out runs/wan5b_lora | tee -a $OUT/summary.txt
  stamp "exported"
  run python3 - $CKPT $WAN $DEV <<'EOF' 2>&1 | grep -v -i warn | tee -a $OUT/summary.txt
import sys, time, torch
from diffusers import WanPipeline
from v4s_lite.checkpoints import load_model
ckpt, wan, dev = sys.argv[1:4]
dtype = torch.bfloat16 if dev == "cuda" else torch.float32
t = time.perf_counter()
pipe = WanPipeline.from_pretrained(wan, torch_dtype=dtype).to(dev)
pipe.load_lora_weights("runs/wan5b_lora")
print(f"WanPipeline + load_lora_weights: {time.perf_counter() - t:.1f} s, adapters {list(pipe.transformer.peft_config)}")
ours = load_model(ckpt, device=dev)[0]
g = torch.Generator().manual_seed(0)
x = torch.randn(1, 48, 3, 16, 26, generator=g).to(dev, dtype)
ts = torch.full((1, 3 * 8 * 13), 500.0, device=dev)
emb = torch.randn(1, 16, pipe.transformer.config.text_dim, generator=g).to(dev, dtype)
ours.transformer.rope.set_positions(None)
with torch.no_grad():
    a = pipe.transformer(x, ts, emb, return_dict=False)[0].float()
    b = ours.transformer(x, ts, emb, return_dict=False)[0].float()
print(f"stock pipeline vs course model from the run folder: max |diff| {(a - b).abs().max().item():.3g} "
      f"(scale {a.abs().max().item():.3g})")
EOF
  stamp "stock pipeline check"
  ;;
sample)
  STEPS=${1:-30}
  bash $0 export $OUT
  CKPT=$(ls -d runs/wan5b/step_* | tail -n 1)
  VAL=$(ls -d data/paper/val/grounding_* | head -n 1)
  run $V4S sample $CKPT --clip $VAL --out runs/wan5b_samples --steps $STEPS --guidance joint --scale 5 --device $DEV 2>&1 \
    | grep -v -i warn | tail -n 3 | tee -a $OUT/summary.txt
  cp runs/wan5b_samples/*.json $OUT/
  python3 - $OUT <<'EOF' | tee -a $OUT/summary.txt
import glob, sys
import numpy as np
from PIL import Image
from v4s_lite.data import read_video
f = sorted(glob.glob("runs/wan5b_samples/*.mp4"))[0]
v = np.asarray(read_video(f))
print("sample video", f, v.shape)  # context frames, then the generated target (frame 0 = the given first frame)
Image.fromarray(np.concatenate([v[0], v[336], v[337], v[-1]], 1)).save(f"{sys.argv[1]}/sample_frames.png")
EOF
  stamp "v4s sample (337 context + 181 target frames, joint CFG, $STEPS steps)"
  run $V4S eval --checkpoint $CKPT --data data/paper/val --out runs/wan5b_eval --steps $STEPS --device $DEV \
    --no-figures 2>&1 | grep -v -i warn | tail -n 8 | tee -a $OUT/summary.txt
  cp runs/wan5b_eval/metrics.json $OUT/eval_metrics.json
  stamp "v4s eval --checkpoint"
  ;;
score)  # v4s eval --checkpoint alone (generate with joint CFG, then judge; the Wan VAE's round trip is skipped by
  # the judge: codec.WanVAECodec.judge_round_trip), timed
  STEPS=${1:-30}
  CKPT=$(ls -d runs/wan5b/step_* | tail -n 1)
  run $V4S eval --checkpoint $CKPT --data data/paper/val --out runs/wan5b_eval --steps $STEPS --device $DEV \
    --no-figures ${EVAL_FLAGS:-} 2>&1 | grep -v -i warn | tail -n 12 | tee -a $OUT/summary.txt
  cp runs/wan5b_eval/metrics.json $OUT/eval_metrics.json
  stamp "v4s eval --checkpoint ($STEPS sampling steps, then the judge)"
  python3 - $OUT <<'EOF' | tee -a $OUT/summary.txt
import glob, sys
import numpy as np
from PIL import Image
from v4s_lite.data import read_video
f = sorted(glob.glob("runs/wan5b_eval/videos/*/target.mp4"))[0]
v = np.asarray(read_video(f))
print("scored video", f, v.shape)  # the generated target (frame 0 = the given first frame)
Image.fromarray(np.concatenate([v[0], v[len(v) // 2], v[-1]], 1)).save(f"{sys.argv[1]}/eval_frames.png")
EOF
  ;;
path)  # the whole path in one call (a warm machine that holds the folder and the cache skips `prepare`)
  SECS=${1:?seconds before the interrupt}; STEPS=${2:?steps}; SAMPLE=${3:-20}
  if [ -f $WAN/model_index.json ] && [ -d data/paper/latents ]; then stamp "prepare: kept (warm machine)"
  else bash $0 prepare $OUT 1; fi
  rm -rf runs/wan5b  # a new run: --resume below continues this call's own checkpoint
  bash $0 interrupt $OUT $SECS $STEPS; bash $0 resume $OUT $STEPS; bash $0 export $OUT
  bash $0 score $OUT $SAMPLE
  speed runs/wan5b wan-train "the train logs"
  ;;
*)
  echo "unknown phase $PHASE: prepare | train | interrupt | resume | lowmem | export | sample | score | path"; exit 2 ;;
esac

#!/usr/bin/env bash
# The device calls of the twelfth session (2026-12-04), as sent (`run`, carry [".site"], from the repository root), each
# sent as soon as the last one returned (the machine goes back 30 s after a call).
# Issue 13, both halves at once (the rule, written before the run in results/gpu_2026-12-04e/README.md): END=mixed, the
# even seed blocks' walks end at a scan view of the target, the odd ones at the object, so neither the room nor the
# instruction alone predicts the destination; fresh rooms ROOMS_FROM=1620 (N = 180 per process: 2,880 rooms no
# model saw); run mixed_lite (the shipped size and recipe, from scratch). On validation: the room's gap at the
# destination on val_end >= 10% AND the instruction's gap at the destination on val >= 10% says both are learnable
# together; then its IF(SD<0.2) against the shipped model on validation (tables.choose_run) decides the test rooms.
# Issue 14: the whole 5B path (random weights of the exact architecture) with a few hundred steps; its random folder,
# clip and latent cache are made during call 2, beside the lite run (the lite loop leaves most of the GPU idle).
#   bash results/gpu_2026-12-04f/calls.sh data  $OUT   # rooms (mixed), val + val_end, cache; mixed_lite trains the rest
#   bash results/gpu_2026-12-04f/calls.sh train $OUT   # mixed_lite trains on (5B prepare beside it); gaps; choose; ship
#   bash results/gpu_2026-12-04f/calls.sh wan   $OUT   # wan-train to STEPS (SIGINT, --resume), export, stock pipeline,
#                                                     # v4s eval --checkpoint --fp8 (337 + 181 frames, joint CFG)
set -uo pipefail
CALL=${1:?data | train | wan}; O=${2:?out dir}
if [ ! -d /tmp/site/diffusers ] && [ -f .site/site.tar.xz ]; then mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site; fi
export PYTHONPATH=/tmp/site:$PWD END=mixed ROOMS_FROM=1620 EVAL_SETS="val val_end" VALIDATE_ON=val_end
export VALIDATE_EVERY=${VALIDATE_EVERY:-2000} CKPT_EVERY=1000 ABLATIONS=0
# the 24 GB pick with FP8 (notebook 10's choice for an L4), as results/gpu_2026-12-04d
export WAN_CFG=configs/wan22_ti2v_5b_24gb.yaml WAN_SET="--set wan.fp8_base=true --set wan.checkpointing=22"
CALL_S=${CALL_S:-575}
t0=$(date +%s); stamp() { echo "[$1: $(( $(date +%s)-t0 )) s]" | tee -a $O/calls.txt; }
left() { echo $(( $1 - ($(date +%s)-t0) )); }  # seconds until $1 s after the call began
mkdir -p runs $O
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a $O/gpu.txt
[ -d data/lite_mixed/train ] && echo "warm machine: data/lite_mixed kept" | tee -a $O/calls.txt
case $CALL in
data|train)
  if [ $CALL = train ] && [ ! -f models/wan22_random_5b/model_index.json ]; then  # issue 14's slow parts, beside
    (bash tools/gpu_wan.sh prepare $O/wan 1 > $O/wan_prepare.log 2>&1; stamp "5B prepare (beside the lite run)") &
  fi
  bash tools/gpu_lite.sh data $O 180; stamp "data + cache (kept when they exist)"
  tail=$([ $CALL = train ] && echo 300 || echo 45)  # train: gaps (<= 110 s), the validation choice (~150 s), ship
  s=$(left $(( CALL_S - tail ))); [ $s -gt 60 ] && { bash tools/gpu_lite.sh train $O $s mixed_lite; stamp train; }
  wait; stamp "background done"
  if [ $CALL = train ]; then
    GAP_SETS="val val_end" timeout 110 bash tools/gpu_lite.sh gaps $O mixed_lite; stamp "gaps (val, val_end)"
    bash tools/gpu_lite.sh choose $O $(left $(( CALL_S - 40 ))) shipped mixed_lite; stamp "choose on val"
  fi
  bash tools/gpu_lite.sh ship $O mixed_lite; stamp ship
  cp runs/mixed_lite/validation.jsonl $O/validation_mixed_lite.jsonl 2>/dev/null
  bash tools/gpu_lite.sh bundle $O
  ;;
wan)  # random weights of the exact Wan2.2-TI2V-5B architecture: the times and memory are real, the video is noise
  SECS=${SECS:-120} STEPS=${STEPS:-300} SAMPLE=${SAMPLE:-10}
  if [ ! -f models/wan22_random_5b/model_index.json ] || [ ! -d data/paper/latents ]; then  # a fresh machine
    SECS=80; STEPS=120; echo "fresh machine: prepare here, $STEPS steps" | tee -a $O/calls.txt
    bash tools/gpu_wan.sh prepare $O 1; stamp prepare
  fi
  rm -rf runs/wan5b
  bash tools/gpu_wan.sh interrupt $O $SECS $STEPS; stamp "wan-train, SIGINT after $SECS s"
  bash tools/gpu_wan.sh resume $O $STEPS; stamp "wan-train --resume to $STEPS steps"
  bash tools/gpu_wan.sh export $O; stamp "export + WanPipeline.load_lora_weights"
  EVAL_FLAGS=--fp8 bash tools/gpu_wan.sh score $O $SAMPLE; stamp "v4s eval --checkpoint --fp8 ($SAMPLE steps; judge)"
  python3 - runs/wan5b <<'PY' | tee -a $O/calls.txt
import sys
from v4s_lite.train import read_log, seconds_per_step
log = read_log(sys.argv[1])
print(f"wan-train: {log[-1]['step']} steps, {seconds_per_step(log):.3f} s per step over the second half of the log, "
      f"peak {max(r.get('peak_gib', 0) for r in log):.1f} GiB")
PY
  (cd $O && tar czf /tmp/bundle.tgz . && find . -type f ! -name calls.txt ! -name summary.txt ! -name '*.png' -delete \
    && mv /tmp/bundle.tgz bundle.tgz)
  ;;
esac

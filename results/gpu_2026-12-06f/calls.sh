#!/usr/bin/env bash
# The twenty-fourth session's lease (2026-12-06f), from the repository root, each call <= 600 s:
#   1. carry [".site"]:  COOL_STEPS=N CALL_S=580 bash results/gpu_2026-12-06f/calls.sh data $OUT   (render, cache, train, export)
#   2.                   COOL_STEPS=N CALL_S=C2 bash results/gpu_2026-12-06f/calls.sh train $OUT  (resume to COOL_STEPS, export)
# A cool-down: mixed_m_w3 (../gpu_2026-12-06e, 36,027 steps; its weights restored over data/v4s-lite's in the working
# tree, not committed: WEIGHTS.md there) trained on with the rate warming up over 300 steps, then decaying linearly
# to 0 at COOL_STEPS, on fresh rooms ROOMS_BASE=60000 ROOMS_FROM=540 (offsets 540..719). Then on the CPU the 200
# validation rooms (README.md: the rule, written before the lease).
set -uo pipefail
CALL=${1:?data | train}; O=${2:?out dir}
W3=0c0c85516157c30a32278e60362bda87b5748c86472cf7ae64b55bb56997bf24
if ! echo "$W3  data/v4s-lite/diffusion_pytorch_model.safetensors" | sha256sum -c --status; then
  echo "data/v4s-lite does not hold mixed_m_w3's weights: restore them first (../gpu_2026-12-06e/.../WEIGHTS.md)"; exit 2
fi
if [ ! -d /tmp/site/diffusers ] && [ -f .site/site.tar.xz ]; then mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site; fi
export PYTHONPATH=/tmp/site:$PWD END=mixed ROOMS_BASE=60000 ROOMS_FROM=540 INIT_FROM=data/v4s-lite EVAL_SETS="val val_end" VALIDATE_ON=val_end
export VALIDATE_EVERY=${VALIDATE_EVERY:-2000} CKPT_EVERY=1000 ABLATIONS=0 COOL_STEPS=${COOL_STEPS:?set COOL_STEPS (README.md: from the budget)}
CALL_S=${CALL_S:-540}
t0=$(date +%s); stamp() { echo "[$1: $(( $(date +%s)-t0 )) s]" | tee -a $O/calls.txt; }
left() { echo $(( $1 - ($(date +%s)-t0) )); }
mkdir -p runs $O
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a $O/gpu.txt
case $CALL in
data|train)
  bash tools/gpu_lite.sh data $O 180; stamp "data + cache (kept when they exist)"
  s=$(left $(( CALL_S - 60 ))); [ $s -gt 60 ] && { bash tools/gpu_lite.sh train $O $s mixed_m_cool; stamp train; }
  bash tools/gpu_lite.sh ship $O mixed_m_cool; stamp ship
  cp runs/mixed_m_cool/validation.jsonl $O/validation_mixed_m_cool.jsonl 2>/dev/null
  bash tools/gpu_lite.sh bundle $O
  ;;
*) echo "unknown call $CALL (data | train)"; exit 2 ;;
esac

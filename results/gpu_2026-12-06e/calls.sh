#!/usr/bin/env bash
# The calls that ran in the twenty-third session's lease (2026-12-06e), from the repository root, each <= 600 s;
# the data|train case of ../gpu_2026-12-06c/calls_next.sh (its plan's other calls, prep and warm, are folded into the
# first call here, which renders, caches and trains; README.md beside this file has the walls):
#   1. carry [".site"]:  CALL_S=580 bash results/gpu_2026-12-06e/calls.sh data $OUT
#   2.                   CHOOSE=0 CALL_S=585 bash results/gpu_2026-12-06e/calls.sh train $OUT   (the machine kept the run)
# Fresh rooms ROOMS_BASE=60000 ROOMS_FROM=360 (offsets 360..539), warm from data/v4s-lite (27,452 steps);
# then on the CPU the 200 validation rooms (README.md: the rule, written before the lease).
set -uo pipefail
CALL=${1:?data | train}; O=${2:?out dir}
if [ ! -d /tmp/site/diffusers ] && [ -f .site/site.tar.xz ]; then mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site; fi
export PYTHONPATH=/tmp/site:$PWD END=mixed ROOMS_BASE=60000 ROOMS_FROM=360 INIT_FROM=data/v4s-lite EVAL_SETS="val val_end" VALIDATE_ON=val_end
export VALIDATE_EVERY=${VALIDATE_EVERY:-2000} CKPT_EVERY=2000 ABLATIONS=0
export WAN_CFG=configs/wan22_ti2v_5b_24gb.yaml WAN_SET="--set wan.fp8_base=true --set wan.checkpointing=22"
CALL_S=${CALL_S:-540}
t0=$(date +%s); stamp() { echo "[$1: $(( $(date +%s)-t0 )) s]" | tee -a $O/calls.txt; }
left() { echo $(( $1 - ($(date +%s)-t0) )); }
mkdir -p runs $O
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a $O/gpu.txt
case $CALL in
data|train)
  bash tools/gpu_lite.sh data $O 180; stamp "data + cache (kept when they exist)"
  CHOOSE=${CHOOSE:-$([ $CALL = train ] && echo 1 || echo 0)}  # CHOOSE=0: no GPU choice (this session: budget)
  tail=$([ $CHOOSE = 1 ] && echo 290 || echo 60)  # train: the choice (~150 s), the gaps on val (~60 s), ship;
  # validation.jsonl logs the val_end gaps every 2,000 steps
  s=$(left $(( CALL_S - tail ))); [ $s -gt 60 ] && { bash tools/gpu_lite.sh train $O $s ${RUN:-mixed_m_warm}; stamp train; }
  if [ $CHOOSE = 1 ]; then
    bash tools/gpu_lite.sh choose $O $(left $(( CALL_S - 110 ))) shipped ${RUN:-mixed_m_warm}; stamp "choose on val"
    # the gate's instruction half (../gpu_2026-12-05c: the instruction gap at the destination on val >= 10%)
    GAP_SETS=val timeout $(left $(( CALL_S - 40 ))) bash tools/gpu_lite.sh gaps $O ${RUN:-mixed_m_warm}; stamp "gaps on val"
  fi
  bash tools/gpu_lite.sh ship $O ${RUN:-mixed_m_warm}; stamp ship
  for r in ${RUN:-mixed_m_warm}; do cp runs/$r/validation.jsonl $O/validation_$r.jsonl 2>/dev/null; done
  bash tools/gpu_lite.sh bundle $O
  ;;
*) echo "unknown call $CALL (data | train: the calls that ran; the other calls of the plan are in ../gpu_2026-12-06c/calls_next.sh)"; exit 2 ;;
esac

#!/usr/bin/env bash
# SENT 2026-12-05 (fourteenth session), as planned in ../cpu_2026-12-05/calls_next.sh (written when no machine was
# lent). Changed before sending: CHOOSE=0 skips the GPU's 64-room choice (two refused starts cost 182 s of the
# 1,800; the choice goes to a CPU on the 264 validation rooms instead, where 64 rooms were shown too few). Copy this file into that session's results folder and send the calls in this order, each as soon as the last
# returns (`run`, carry [".site"], from the repository root; the machine goes back 30 s after a call):
#   SECS=90 STEPS=200 SAMPLE=10 timeout 590 bash calls_next.sh wan $OUT   # 1. issue 14 FIRST (fresh machine: ~530 s)
#   CALL_S=575 bash calls_next.sh data  $OUT  # 2. issue 13: fresh mixed rooms, val + val_end, cache; both sizes train
#   CALL_S=575 bash calls_next.sh train $OUT  # 3. both train on; the 64-room choice; ship both (shards come back)
# Why this order: issue 14's call was lost twice as the LAST call of a lease; a fresh machine fits 200 steps of the 5B
# path in one call (results/gpu_2026-12-04f/README.md, "For the next device session").
# Issue 13's question (results/cpu_2026-12-05/README.md): mixed_lite is under-trained, not memorising (its own
# training rooms score as validation rooms), so the lever is steps or size: mixed_lite (2.3M) and mixed_m (17M) from
# scratch side by side, same wall-clock, on 2,880 fresh rooms (ROOMS_FROM=2120: k x 2,500 + 2120..2299). Rule, as
# for mixed_lite: the room's gap at the destination on val_end >= 10% AND the instruction's on val >= 10%; the
# shipped model is replaced only by tables.choose_run on validation. Both exports come back (ship: bf16 shards of
# <= 15 MB) so a CPU session can score them on the 200 extra validation rooms (+ 16..65, docs/DATA.md).
# Watch beside the rule: the shuffled-chunks gap (validation.jsonl, 'end gap: shuffled context chunks'), 0.0-0.3%
# for every model so far: does size or time make the models use where each view was taken?
set -uo pipefail
CALL=${1:?wan | bench | data | train}; O=${2:?out dir}
if [ ! -d /tmp/site/diffusers ] && [ -f .site/site.tar.xz ]; then mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site; fi
export PYTHONPATH=/tmp/site:$PWD END=mixed ROOMS_FROM=2120 EVAL_SETS="val val_end" VALIDATE_ON=val_end
export VALIDATE_EVERY=${VALIDATE_EVERY:-2000} CKPT_EVERY=1000 ABLATIONS=0
export WAN_CFG=configs/wan22_ti2v_5b_24gb.yaml WAN_SET="--set wan.fp8_base=true --set wan.checkpointing=22"
CALL_S=${CALL_S:-575}
t0=$(date +%s); stamp() { echo "[$1: $(( $(date +%s)-t0 )) s]" | tee -a $O/calls.txt; }
left() { echo $(( $1 - ($(date +%s)-t0) )); }
mkdir -p runs $O
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a $O/gpu.txt
case $CALL in
wan)  # random weights of the exact Wan2.2-TI2V-5B architecture: the times and memory are real, the video is noise
  EVAL_FLAGS=--fp8 bash tools/gpu_wan.sh path $O ${SECS:-90} ${STEPS:-200} ${SAMPLE:-10}; stamp "the 5B path"
  (cd $O && tar czf /tmp/bundle.tgz . && find . -type f ! -name calls.txt ! -name summary.txt ! -name '*.png' -delete \
    && mv /tmp/bundle.tgz bundle.tgz)
  ;;
bench)  # added this session: selective activation checkpointing (wan.checkpoint_keeps_attention, new) beside the
  # same-run DiffSynth-Studio step, against the FP8 rows it would replace (issue 14's training goal, <= 0.6x at <= 22 GB)
  python3 benchmarks/bench_wan.py --warmup 2 --iters 5 --selective ${SEL:-30,24,22} --out $O/bench_wan_h200 \
    --only peer_diffsynth_train,train_fp8_keep${KEEP1:-24},train_fp8_sel${KEEP1:-24},train_fp8_keep30,train_fp8_keep${KEEP2:-22},train_fp8_sel${KEEP2:-22} \
    2>&1 | grep --line-buffered -v -i warn | tail -n 40
  stamp bench
  ;;
data|train)
  bash tools/gpu_lite.sh data $O 180; stamp "data + cache (kept when they exist)"
  CHOOSE=${CHOOSE:-$([ $CALL = train ] && echo 1 || echo 0)}  # CHOOSE=0: no GPU choice (this session: budget)
  tail=$([ $CHOOSE = 1 ] && echo 230 || echo 60)  # train: the choice (~180 s), ship. The gaps by the rule are
  # measured on a CPU from the exports (as every recorded figure); validation.jsonl logs them every 2,000 steps here
  s=$(left $(( CALL_S - tail ))); [ $s -gt 60 ] && { bash tools/gpu_lite.sh train $O $s mixed_lite mixed_m; stamp train; }
  if [ $CHOOSE = 1 ]; then
    bash tools/gpu_lite.sh choose $O $(left $(( CALL_S - 50 ))) shipped mixed_lite mixed_m; stamp "choose on val"
  fi
  bash tools/gpu_lite.sh ship $O mixed_lite mixed_m; stamp ship
  for r in mixed_lite mixed_m; do cp runs/$r/validation.jsonl $O/validation_$r.jsonl 2>/dev/null; done
  bash tools/gpu_lite.sh bundle $O
  ;;
*) echo "unknown call $CALL (wan | bench | data | train)"; exit 2 ;;
esac

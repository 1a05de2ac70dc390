#!/usr/bin/env bash
# The device calls of 2026-12-04 (eleventh session), as sent (`run`, carry [".site"], from the repository root), each
# sent as soon as the last one returned (the machine goes back 30 s after a call).
# Issue 13, two questions on one recipe, fresh rooms (ROOMS_FROM=1320, 180 per process: 2,880 rooms no model saw):
#  1. Does the lite model read the room when the answer is in its context? make-data --end scan (END=scan): every
#     training walk ends at the scan's best view of the target, a view the context video passed through. end_lite:
#     the shipped size and recipe from scratch. Rule written before (results/gpu_2026-12-04d): its room gap at the
#     destination on val_end >= 10% says retrieval is learnable (what the lite model lacks is the synthesis of an
#     unseen view); < 5% says it ignores the context even when the answer is in it. Baseline: +3.0%.
#  2. Box frames vs none with the corrected judge (an unmarked video is judged without a box): end_lite_nobox, the
#     same recipe without box frames, side by side on the same GPU for the same time; paired on the 200 test rooms.
#   bash results/gpu_2026-12-04e/calls.sh data  $OUT   # rooms, val_end, both caches; both runs train the rest
#   bash results/gpu_2026-12-04e/calls.sh train $OUT   # warm machine: both train on (fresh: data again, then train)
#   bash results/gpu_2026-12-04e/calls.sh judge $OUT   # test rooms; end_lite vs end_lite_nobox (+ OOD) on them
set -uo pipefail
CALL=${1:?data | train | judge}; O=${2:?out dir}
if [ ! -d /tmp/site/diffusers ] && [ -f .site/site.tar.xz ]; then mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site; fi
export PYTHONPATH=/tmp/site:$PWD END=scan ROOMS_FROM=1320 EVAL_SETS=val_end VALIDATE_ON=val_end
export VALIDATE_EVERY=${VALIDATE_EVERY:-2000} CKPT_EVERY=1000 ABLATIONS=nobox
RUNS="end_lite end_lite_nobox"
t0=$(date +%s); stamp() { echo "[$1: $(( $(date +%s)-t0 )) s]" | tee -a $O/calls.txt; }
left() { echo $(( $1 - ($(date +%s)-t0) )); }  # seconds until $1 s after the call began
mkdir -p runs $O
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a $O/gpu.txt
[ -d data/lite_end/train ] && echo "warm machine: data/lite_end kept" | tee -a $O/calls.txt
case $CALL in
data|train)
  bash tools/gpu_lite.sh data $O 180; stamp "data + caches (kept when they exist)"
  s=$(left $(( ${CALL_S:-575} - 45 ))); [ $s -gt 60 ] && { bash tools/gpu_lite.sh train $O $s $RUNS; stamp train; }
  bash tools/gpu_lite.sh ship $O $RUNS; stamp ship
  for r in $RUNS; do cp runs/$r/validation.jsonl $O/validation_$r.jsonl 2>/dev/null; done
  ;;
judge)  # the standard test rooms (walks that end at the object, as every earlier table); the pair of the
  # box-frames ablation at its own recipe: "full, same budget" (end_lite) vs "without box frames" (end_lite_nobox)
  EVAL_SETS=test bash tools/gpu_lite.sh evaldata $O; stamp "test rooms"
  bash tools/gpu_lite.sh tables $O test $(left ${CALL_S:-520}) --main end_lite --ablated end_lite \
    --only "full, same budget" "without box frames" "OOD scenes"; stamp tables
  ;;
esac
bash tools/gpu_lite.sh bundle $O

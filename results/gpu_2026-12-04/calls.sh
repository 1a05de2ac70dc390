#!/usr/bin/env bash
# The device calls of 2026-12-04 (seventh session), as sent (`run`, carry [".site"], from the repository root), each
# sent as soon as the last one returned so that they find the same warm machine (data/lite and runs/ live there);
# every call also holds what it needs to start on a fresh machine (the data phase keeps what exists).
#   bash results/gpu_2026-12-04/calls.sh call1 $OUT  # 3,200 fresh training rooms (ROOMS_FROM=570: seeds no model
#                                                  # has seen), the val and test sets, the latent cache; then two
#                                                  # runs side by side: lite_warm (the 2.3M model, warm from
#                                                  # results/lite_2026-12-03b/lite_step004639) and lite_m (6.1M, from
#                                                  # scratch), validation gaps every VALIDATE_EVERY steps; both exported
#   bash results/gpu_2026-12-04/calls.sh call2 $OUT  # both train on, exported; the choice on validation (shipped,
#                                                  # lite_warm, lite_m: the fixed rule); the chosen run's test tables
#   bash results/gpu_2026-12-04/calls.sh call3 $OUT  # the test tables grown (the same file, --resume) until DL_S
# (a dry run on a CPU: DEVICE=cpu VAL_N=1 TEST_N=1 N_ROOMS=1 VALIDATE_EVERY=20 CALL_S=330 TRAIN_SET="--set batch_size=4" bash ... call1 /tmp/o)
# Question asked of the two runs: does the room gap (another room's context, on the first 32 validation rooms)
# grow with model size, or only with steps? Both see the same rooms in the same wall-clock of a shared GPU.
set -uo pipefail
CALL=${1:?call1 | call2 | call3}; O=${2:?out dir}
if [ ! -d /tmp/site/diffusers ]; then mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site; fi
export PYTHONPATH=/tmp/site:$PWD ROOMS_FROM=570 VALIDATE_EVERY=${VALIDATE_EVERY:-3000} CKPT_EVERY=1000
RUNS=${RUNS:-"lite_warm lite_m lite_l"}  # session 7's call 0 ran RUNS="lite_warm lite_m" (README)
t0=$(date +%s); stamp() { echo "[$1: $(( $(date +%s)-t0 )) s]" | tee -a $O/calls.txt; }
left() { echo $(( $1 - ($(date +%s)-t0) )); }  # seconds until $1 s after the call began
mkdir -p runs $O
TEST_ONLY=("full (joint CFG)" "guidance text" "OOD scenes")
case $CALL in
call1)
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee $O/gpu.txt
  bash tools/gpu_lite.sh data $O ${N_ROOMS:-200}; stamp "data + cache"
  s=$(left $(( ${CALL_S:-580} - ${SHIP_S:-70} ))); [ $s -gt 90 ] && { bash tools/gpu_lite.sh train $O $s $RUNS; stamp train; }
  bash tools/gpu_lite.sh ship $O $RUNS; stamp ship
  ;;
call2)
  bash tools/gpu_lite.sh data $O ${N_ROOMS:-200}; stamp "data (kept when it exists)"
  s=$(left $(( ${CALL_S:-580} - ${AFTER_S:-300} ))); [ $s -gt 60 ] && { bash tools/gpu_lite.sh train $O $s $RUNS; stamp train; }
  bash tools/gpu_lite.sh ship $O $RUNS; stamp ship
  [ "${CHOOSE_S:-150}" = 0 ] && exit_early=1 || exit_early=0  # CHOOSE_S=0: train and ship only (call 3 chooses)
  [ $exit_early = 1 ] || bash tools/gpu_lite.sh choose $O ${CHOOSE_S:-150} shipped $RUNS; stamp choose
  best=$(cat $O/chosen.txt 2>/dev/null || echo shipped)
  if [ $exit_early = 0 ] && [ "$best" != shipped ]; then
    bash tools/gpu_lite.sh grow $O $(left $(( ${CALL_S:-580} - 25 ))) --main $best --only "${TEST_ONLY[@]}"
    stamp "test tables"
  fi
  ;;
call3)
  if [ ! -f runs/chosen.txt ] && [ -d data/lite/val/id ]; then  # call 2 left the choice (CHOOSE_S=0)
    bash tools/gpu_lite.sh choose $O ${CHOOSE_S:-150} shipped $RUNS; stamp choose; cp $O/chosen.txt runs/chosen.txt
  fi
  best=$(cat runs/chosen.txt 2>/dev/null || echo shipped)
  [ -d data/lite/test/ood ] && [ "$best" != shipped ] && {
    bash tools/gpu_lite.sh grow $O ${DL_S:-400} --main $best --only "${TEST_ONLY[@]}"; stamp "test tables"; }
  ;;
esac
[ -f $O/chosen.txt ] && cp $O/chosen.txt runs/chosen.txt
for r in $RUNS; do
  cp runs/$r/validation.jsonl $O/validation_$r.jsonl 2>/dev/null; cp runs/$r/loss.jsonl $O/loss_$r.jsonl 2>/dev/null
done
tail -n 2 $O/*.log 2>/dev/null | tail -n 40 > $O/log_tails.txt || true
# at most 8 files come back from a call: all in one archive, the summaries and weight shards beside it
(cd $O && tar czf /tmp/bundle.tgz --exclude='*.safetensors' . && \
  find . -type f ! -name calls.txt ! -name summary.txt ! -name '*.safetensors' -delete && mv /tmp/bundle.tgz bundle.tgz)

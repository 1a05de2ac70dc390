#!/usr/bin/env bash
# The device calls of 2026-12-04 (eighth session), as sent (`run`, carry [".site"], from the repository root), each
# sent as soon as the last one returned so that they find the same warm machine (data/lite and runs/ live there).
# The question: do grounding walks that start at one of the scan's views (make-data --start scan) make the model use
# the room? Two runs side by side on 3,200 fresh training rooms whose walks start at a scan view (ROOMS_FROM=770:
# seeds no model has seen, docs/DATA.md): scan_warm (the 2.3M model warm from results/lite_2026-12-03b/
# lite_step004639, as the 2026-12-04 lite_warm run was on default-start rooms: the comparison) and scan_lite (the
# same model from scratch, as the shipped one was). Validation gaps on val_scan (the validation rooms 300,000+ with
# walks from a scan view: the same rooms, --start scan).
#   bash results/gpu_2026-12-04b/calls.sh call1 $OUT  # training rooms, val_scan, the latent cache; both runs train
#   bash results/gpu_2026-12-04b/calls.sh call2 $OUT  # both train on, exported
#   bash results/gpu_2026-12-04b/calls.sh call3 $OUT  # the choice on val_scan (shipped and both runs), then the
#                                                    # pick's test tables on test_scan, paired with the shipped model
# (a dry run on a CPU: DEVICE=cpu VAL_N=1 TEST_N=1 N_ROOMS=1 VALIDATE_EVERY=20 CALL_S=330 TRAIN_SET="--set batch_size=4" bash ... call1 /tmp/o)
set -uo pipefail
CALL=${1:?call1 | call2 | call3}; O=${2:?out dir}
if [ ! -d /tmp/site/diffusers ] && [ -f .site/site.tar.xz ]; then mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site; fi
export PYTHONPATH=/tmp/site:$PWD ROOMS_FROM=770 START=scan VALIDATE_ON=val_scan VAL=val_scan TEST=test_scan
export VALIDATE_EVERY=${VALIDATE_EVERY:-2000} CKPT_EVERY=1000
RUNS=${RUNS:-"scan_warm scan_lite"}
t0=$(date +%s); stamp() { echo "[$1: $(( $(date +%s)-t0 )) s]" | tee -a $O/calls.txt; }
left() { echo $(( $1 - ($(date +%s)-t0) )); }  # seconds until $1 s after the call began
mkdir -p runs $O
case $CALL in
call1)
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee $O/gpu.txt
  EVAL_SETS=val_scan bash tools/gpu_lite.sh data $O ${N_ROOMS:-200}; stamp "data + cache"
  s=$(left $(( ${CALL_S:-570} - ${SHIP_S:-50} ))); [ $s -gt 60 ] && { bash tools/gpu_lite.sh train $O $s $RUNS; stamp train; }
  bash tools/gpu_lite.sh ship $O $RUNS; stamp ship
  ;;
call2)
  EVAL_SETS=val_scan bash tools/gpu_lite.sh data $O ${N_ROOMS:-200}; stamp "data (kept when it exists)"
  s=$(left $(( ${CALL_S:-570} - ${SHIP_S:-50} ))); [ $s -gt 60 ] && { bash tools/gpu_lite.sh train $O $s $RUNS; stamp train; }
  bash tools/gpu_lite.sh ship $O $RUNS; stamp ship
  ;;
call3)
  [ -d data/lite/val_scan ] || EVAL_SETS=val_scan bash tools/gpu_lite.sh evaldata $O
  bash tools/gpu_lite.sh choose $O ${CHOOSE_S:-200} shipped $RUNS; stamp choose
  best=$(cat $O/chosen.txt 2>/dev/null || echo shipped)
  # the test rooms with walks from a scan view: the pick and the shipped model on the same rooms and noise seeds
  EVAL_SETS=test_scan bash tools/gpu_lite.sh evaldata $O; stamp "test_scan rooms"
  main=${MAIN:-$best}; [ "$main" = shipped ] && also="" || also="--also shipped"
  bash tools/gpu_lite.sh grow $O $(left $(( ${CALL_S:-570} - 25 ))) --main $main $also \
    --only "full (joint CFG)" "guidance text" "OOD scenes"; stamp "test tables"
  ;;
esac
for r in $RUNS; do
  cp runs/$r/validation.jsonl $O/validation_$r.jsonl 2>/dev/null; cp runs/$r/loss.jsonl $O/loss_$r.jsonl 2>/dev/null
done
# at most 8 files come back from a call: all in one archive, the summaries and weight shards beside it
(cd $O && tar czf /tmp/bundle.tgz --exclude='*.safetensors' . && \
  find . -type f ! -name calls.txt ! -name summary.txt ! -name '*.safetensors' -delete && mv /tmp/bundle.tgz bundle.tgz)

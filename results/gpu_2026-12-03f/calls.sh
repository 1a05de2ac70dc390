#!/usr/bin/env bash
# The device calls of 2026-12-03 (sixth session), as sent (`run`, carry [".site"], from the repository root), each
# sent as soon as the last one returned so that all three find the same warm machine (data/lite and runs/ live there):
#   bash results/gpu_2026-12-03f/calls.sh call1 $OUT  # issue 13's loop benchmark, torch.compile "default" against
#                                                   # "reduce-overhead" (CUDA graphs); 2,560 fresh training rooms
#                                                   # (ROOMS_FROM=250: seeds no model has seen), the val and test sets,
#                                                   # the latent cache; lite_warm starts if time is left
#   bash results/gpu_2026-12-03f/calls.sh call2 $OUT  # lite_warm trains on (the faster compile mode), validation
#                                                   # gaps every VALIDATE_EVERY steps on 32 validation rooms; then
#                                                   # the choice on validation (shipped vs lite_warm, the fixed rule)
#   bash results/gpu_2026-12-03f/calls.sh call3 $OUT  # its gaps, its export, lite_warm's test tables (reported only)
#   bash results/gpu_2026-12-03f/calls.sh call4 $OUT  # (what ran instead of calls 2 and 3: see call4 below)
# (a dry run on a CPU: DEVICE=cpu VAL_N=1 TEST_N=1 N_ROOMS=1 BENCH_S=0 VALIDATE_EVERY=20 CALL_S=300 bash ... call1 /tmp/o)
# lite_warm: results/lite_2026-12-03b/lite_step004639 (4,639 steps on rooms k*2,500 + 0..124) trained on.
set -uo pipefail
CALL=${1:?call1 | call2 | call3}; O=${2:?out dir}
if [ ! -d /tmp/site/diffusers ]; then mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site; fi
export PYTHONPATH=/tmp/site:$PWD ROOMS_FROM=250 VALIDATE_EVERY=${VALIDATE_EVERY:-4000} CKPT_EVERY=1000
t0=$(date +%s); stamp() { echo "[$1: $(( $(date +%s)-t0 )) s]" | tee -a $O/calls.txt; }
left() { echo $(( $1 - ($(date +%s)-t0) )); }  # seconds until $1 s after the call began
mode() {  # the faster compile mode the benchmark measured (runs/compile_mode.txt, kept on the machine)
  [ -s runs/compile_mode.txt ] && cat runs/compile_mode.txt || echo default
}
mkdir -p runs
case $CALL in
call1)
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee $O/gpu.txt
  [ "${BENCH_S:-15}" -gt 0 ] && { timeout 230 bash tools/gpu_lite.sh bench $O ${BENCH_S:-15}; stamp bench; }
  grep -v "ran eagerly" $O/bench_train_loop.txt 2>/dev/null | sed -n 's/^gpu way (\(.*\)): \([0-9.]*\) ms\/step$/\2 \1/p' \
    | sort -n | head -n 1 | cut -d' ' -f2 > runs/compile_mode.txt
  echo "compile mode for training: $(mode)" | tee -a $O/calls.txt
  bash tools/gpu_lite.sh data $O ${N_ROOMS:-160}; stamp "data + cache"
  s=$(left ${CALL_S:-575}); [ $s -gt 100 ] && { COMPILE=$(mode) bash tools/gpu_lite.sh train $O $s lite_warm; stamp train; }
  ;;
call2)
  COMPILE=$(mode) bash tools/gpu_lite.sh train $O $(left $(( ${CALL_S:-575} - 145 ))) lite_warm; stamp train
  bash tools/gpu_lite.sh choose $O 130 shipped lite_warm; stamp choose
  ;;
call3)
  bash tools/gpu_lite.sh gaps $O lite_warm; stamp gaps
  bash tools/gpu_lite.sh ship $O lite_warm; stamp ship
  bash tools/gpu_lite.sh tables $O test $(left $(( ${CALL_S:-575} - 30 ))) --main lite_warm --only "full (joint CFG)" "guidance text" \
    "OOD scenes"; stamp "test tables"
  ;;
call4)  # a fresh machine (call 2 found none: the first machine was handed back while this session waited): the
  # data again, then lite_warm from its start for the rest of the call with `compile: auto` (now CUDA graphs), its
  # validation gaps every VALIDATE_EVERY steps, its gaps at the end and its weights
  timeout 330 bash tools/gpu_lite.sh data $O ${N_ROOMS:-160}; stamp "data + cache"
  bash tools/gpu_lite.sh train $O $(left $(( ${CALL_S:-575} - 45 ))) lite_warm; stamp train
  bash tools/gpu_lite.sh gaps $O lite_warm; stamp gaps
  bash tools/gpu_lite.sh ship $O lite_warm; stamp ship
  ;;
esac
cp runs/lite_warm/validation.jsonl $O/ 2>/dev/null; cp runs/lite_warm/loss.jsonl $O/loss_lite_warm.jsonl 2>/dev/null
tail -n 2 $O/*.log 2>/dev/null | tail -n 40 > $O/log_tails.txt || true
# at most 8 files come back from a call: all in one archive, the summaries and weight shards beside it
(cd $O && tar czf /tmp/bundle.tgz --exclude='*.safetensors' . && \
  find . -type f ! -name calls.txt ! -name summary.txt ! -name '*.safetensors' -delete && mv /tmp/bundle.tgz bundle.tgz)

#!/usr/bin/env bash
# The device calls of 2026-12-04 (ninth session), as sent (`run`, carry [".site"], from the repository root), each
# sent as soon as the last one returned.
# Issue 13's question: does the lite model read the room once the scan's geometry is given? Every context scan
# starts on its room's +x side and turns counter-clockwise (make-data --scan canonical), walks start at a scan view
# (START=scan), 3,200 fresh training rooms (ROOMS_FROM=1120: seeds no model has seen, docs/DATA.md), the 2.3M model
# from scratch: `canon_lite`, the recipe of the 2026-12-04b `scan_lite` run (random scans), alone on the GPU.
# Validation gaps every 2,000 steps on val_scan rendered with canonical scans (the same 32 rooms).
# Issue 14's question: FP8 for the frozen 5B base, timed beside stock diffusers and DiffSynth-Studio's DiT.
#   bash results/gpu_2026-12-04c/calls.sh canon $OUT  # canonical rooms + val_scan + cache; canon_lite trains
#   bash results/gpu_2026-12-04c/calls.sh next $OUT   # warm machine (data/lite_canon there): canon_lite trains on;
#                                                     # a fresh one: the benchmark instead
#   bash results/gpu_2026-12-04c/calls.sh bench $OUT  # bench_wan.py: stock, DiffSynth-Studio, FP8, compile
# As it went: `canon` trained canon_lite 2,171 steps (data took 381 s); `next` found a fresh machine and ran the
# benchmark. The third call continues canon_lite on the next fresh machine from its exported weights (the optimizer
# state restarts) on the first 120 of the same 200 rooms per seed block (1,920 rooms, to leave time to train):
#   RUNS=canon_warm INIT_FROM=results/gpu_2026-12-04c/call1/exports/canon_lite N_ROOMS=120 \
#     bash results/gpu_2026-12-04c/calls.sh canon $OUT
# (results/lite_2026-12-03b/lite_step004639's weights were moved out of the tree for that call: 64 MiB travel)
set -uo pipefail
CALL=${1:?canon | next | bench}; O=${2:?out dir}
if [ ! -d /tmp/site/diffusers ] && [ -f .site/site.tar.xz ]; then mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site; fi
export PYTHONPATH=/tmp/site:$PWD SCAN=canonical ROOMS_FROM=1120 START=scan VALIDATE_ON=val_scan VAL=val_scan TEST=test_scan
export VALIDATE_EVERY=${VALIDATE_EVERY:-2000} CKPT_EVERY=1000
RUNS=${RUNS:-canon_lite}
t0=$(date +%s); stamp() { echo "[$1: $(( $(date +%s)-t0 )) s]" | tee -a $O/calls.txt; }
left() { echo $(( $1 - ($(date +%s)-t0) )); }  # seconds until $1 s after the call began
mkdir -p runs $O
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a $O/gpu.txt
[ $CALL = next ] && { [ -d data/lite_canon/train ] && CALL=canon || CALL=bench; echo "next -> $CALL" | tee -a $O/calls.txt; }
case $CALL in
canon)
  EVAL_SETS=val_scan bash tools/gpu_lite.sh data $O ${N_ROOMS:-200}; stamp "data + cache (kept when it exists)"
  s=$(left $(( ${CALL_S:-575} - ${SHIP_S:-45} ))); [ $s -gt 60 ] && { bash tools/gpu_lite.sh train $O $s $RUNS; stamp train; }
  bash tools/gpu_lite.sh ship $O $RUNS; stamp ship
  for r in $RUNS; do
    cp runs/$r/validation.jsonl $O/validation_$r.jsonl 2>/dev/null; cp runs/$r/loss.jsonl $O/loss_$r.jsonl 2>/dev/null
  done
  ;;
bench)  # --only's order is the run order: the peer and stock first, then FP8, then compile alone
  timeout $(left ${CALL_S:-570}) python3 benchmarks/bench_wan.py --warmup 2 --iters 5 --selective 30,24 \
    --only denoise_stock,peer_diffsynth_denoise,train_stock_ckpt,peer_diffsynth_train,train_fp8_sel,denoise_fp8,train_compile_sel,denoise_compile \
    --out $O/bench_wan_h200_fp8 > $O/bench.log 2>&1; stamp bench
  tail -n 40 $O/bench.log | tee -a $O/summary.txt
  ;;
esac
# at most 8 files come back from a call: all in one archive, the summaries and weight shards beside it
(cd $O && tar czf /tmp/bundle.tgz --exclude='*.safetensors' . && \
  find . -type f ! -name calls.txt ! -name summary.txt ! -name '*.safetensors' -delete && mv /tmp/bundle.tgz bundle.tgz)
# The fourth call (the session's last 344 s), sent as a command line: the FP8 step with 22 checkpointed blocks, the
# most that the memory estimate lets a 24 GB GPU keep uncheckpointed, beside stock and DiffSynth-Studio:
#   mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site && export PYTHONPATH=/tmp/site:$PWD && \
#   timeout 230 python3 benchmarks/bench_wan.py --warmup 2 --iters 5 --selective 22 \
#     --only peer_diffsynth_train,train_fp8_sel,train_stock_ckpt --out $OUT/bench_wan_h200_fp8_sel22

#!/usr/bin/env bash
# The device calls of 2026-12-04 (tenth session), as sent (`run`, carry [".site"], from the repository root).
#   bash results/gpu_2026-12-04d/calls.sh wan $OUT   # issue 14: the whole 5B path in one call, FP8 base at the 24 GB pick
# (every call of the last two sessions found a fresh machine, so each call holds everything it needs)
set -uo pipefail
CALL=${1:?wan}; O=${2:?out dir}
if [ ! -d /tmp/site/diffusers ] && [ -f .site/site.tar.xz ]; then mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site; fi
export PYTHONPATH=/tmp/site:$PWD
t0=$(date +%s); stamp() { echo "[$1: $(( $(date +%s)-t0 )) s since the call began]" | tee -a $O/calls.txt; }
mkdir -p $O
case $CALL in
wan)  # random weights of the exact Wan2.2-TI2V-5B architecture: the times and memory are real, the video is noise
  # the 24 GB config (configs/wan22_ti2v_5b_24gb.yaml) with the frozen base in FP8 and 22 blocks checkpointed: the
  # pick notebook 10 makes for a 24 GB GPU with FP8 (an L4); the full `wan-train` loop's step is what issue 14's
  # training goal is about (bench_wan.py times the bare step)
  export WAN_CFG=configs/wan22_ti2v_5b_24gb.yaml WAN_SET="--set wan.fp8_base=true --set wan.checkpointing=22"
  export CLIP_DEVICE=${CLIP_DEVICE:-cuda} EVAL_FLAGS=--fp8  # (cpu: the first two calls' renders never finished)
  pkill -f "v4s_lite.cli make-data" 2>/dev/null; rm -rf data/paper  # a warm machine's unfinished renders
  SECS=${SECS:-90} STEPS=${STEPS:-100} SAMPLE=${SAMPLE:-20}
  bash tools/gpu_wan.sh prepare $O 1; stamp prepare
  bash tools/gpu_wan.sh interrupt $O $SECS $STEPS; stamp "wan-train, SIGINT after $SECS s"
  if ! ls -d runs/wan5b/step_* > /dev/null 2>&1; then  # FP8 in the full loop never ran on a GPU before: fall back
    echo "no checkpoint from the FP8 run: bf16 instead" | tee -a $O/calls.txt
    export WAN_SET="" EVAL_FLAGS=""; rm -rf runs/wan5b
    bash tools/gpu_wan.sh interrupt $O $SECS $STEPS; stamp "wan-train (bf16), SIGINT after $SECS s"
  fi
  bash tools/gpu_wan.sh resume $O $STEPS; stamp "wan-train --resume to $STEPS steps"
  bash tools/gpu_wan.sh export $O; stamp "export + WanPipeline.load_lora_weights"
  bash tools/gpu_wan.sh score $O $SAMPLE; stamp "v4s eval --checkpoint (generate 337 + 181 frames, joint CFG, $SAMPLE steps; judge)"
  python3 - runs/wan5b <<'PY' | tee -a $O/calls.txt
import sys
from v4s_lite.train import read_log, seconds_per_step
log = read_log(sys.argv[1])
print(f"wan-train: {log[-1]['step']} steps, {seconds_per_step(log):.3f} s per step over the second half of the log, "
      f"peak {max(r.get('peak_gib', 0) for r in log):.1f} GiB")
PY
  ;;
esac
# at most 8 files come back from a call: everything in one archive, the summaries and the picture beside it
(cd $O && tar czf /tmp/bundle.tgz . && find . -type f ! -name calls.txt ! -name summary.txt ! -name '*.png' -delete \
  && mv /tmp/bundle.tgz bundle.tgz)

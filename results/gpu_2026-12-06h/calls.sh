#!/usr/bin/env bash
# Issue 13: box frames vs none at the shipped size (6.1M), the same recipe and budget. The box arm exists: the first
# lease of the shipped model (results/gpu_2026-12-06b, `mixed_m`, 13,311 steps from scratch on END=mixed rooms
# ROOMS_BASE=60000 ROOMS_FROM=0, 180 per process). This lease trains the no-box arm on the same rooms with the same
# config for the same 13,311 steps (`mixed_m_nobox`: --set box_frames=false), then scores both on the 200 test rooms.
# `run` from the repository root with carry [".site", "exports/mixed_m"] (the box arm's weights: in git history only,
# restored beside this file's README's command), calls sent back to back (the machine goes 30 s after a call):
#   CALL_S=580 bash results/gpu_2026-12-06h/calls.sh data  $OUT   # 1. training rooms, test rooms, the no-box latent
#                                                                  #    cache; mixed_m_nobox trains from scratch
#   CALL_S=590 bash results/gpu_2026-12-06h/calls.sh data  $OUT   # 2. (warm machine: all kept) trains on
#   CALL_S=<left - 30> bash results/gpu_2026-12-06h/calls.sh judge $OUT  # 3. on to 13,311 steps; the test tables:
#        "full, same budget" (mixed_m) and "without box frames" (mixed_m_nobox), paired, 200 id rooms; then exported
# A dry run on a CPU (minutes): DEVICE=cpu VAL_N=1 TEST_N=1 N=1 STEPS=3 WORKERS=2 \
#   TRAIN_EXTRA="--set batch_size=2 --set checkpoint_every=1" bash results/gpu_2026-12-06h/calls.sh data /tmp/dry
#   (then `judge`; the sha check is skipped only with DEVICE=cpu and a weights file that is not the box arm's)
set -uo pipefail
CALL=${1:?data | judge}; O=${2:?out dir}
if [ ! -d /tmp/site/diffusers ] && [ -f .site/site.tar.xz ]; then mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site; fi
export PYTHONPATH=/tmp/site:$PWD END=mixed ROOMS_BASE=60000 ROOMS_FROM=0 EVAL_SETS=test ABLATIONS=nobox MAIN_CACHE=0
export VALIDATE_EVERY=0 CKPT_EVERY=${CKPT_EVERY:-1000}  # no validation probe: it does not change the weights, and
# the box arm's probe cost ~13% of its training time (../gpu_2026-12-06b)
STEPS=${STEPS:-13311}  # the box arm's steps: the budget
export TRAIN_SET="--set steps=$STEPS ${TRAIN_EXTRA:-}"
N=${N:-180}; CALL_S=${CALL_S:-580}
t0=$(date +%s); stamp() { echo "[$1: $(( $(date +%s)-t0 )) s]" | tee -a $O/calls.txt; }
left() { echo $(( $1 - ($(date +%s)-t0) )); }
mkdir -p runs $O
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | tee -a $O/gpu.txt
BOX_SHA=a5bcf2baf6ace758389159dabd3c1b0f7d3b4371fba14700846cc344f412b9cb  # runs/mixed_m/step_013311's EMA, bf16
sha=$(sha256sum exports/mixed_m/diffusion_pytorch_model.safetensors 2>/dev/null | cut -c1-64)
if [ "$sha" != $BOX_SHA ]; then
  echo "exports/mixed_m is not the box arm (sha256 ${sha:-missing}): carry it (README.md beside this file)" | tee -a $O/calls.txt
  [ "${DEVICE:-cuda}" = cpu ] || exit 2
fi
at_budget() { [ -d runs/mixed_m_nobox/step_$(printf %06d $STEPS) ]; }
case $CALL in
data)
  bash tools/gpu_lite.sh data $O $N; stamp "data + cache (kept when they exist)"
  s=$(left $(( CALL_S - 40 ))); at_budget || { [ $s -gt 60 ] && bash tools/gpu_lite.sh train $O $s mixed_m_nobox; }
  stamp train
  bash tools/gpu_lite.sh bundle $O
  ;;
judge)
  bash tools/gpu_lite.sh data $O $N; stamp "data + cache (kept when they exist)"
  # the rest of the budget; the tables need ~400 s of the call (400 tasks, ~1.1 a second: ../gpu_2026-12-04e)
  s=$(left $(( CALL_S - ${TABLES_S:-400} ))); at_budget || { [ $s -gt 30 ] && bash tools/gpu_lite.sh train $O $s mixed_m_nobox; }
  stamp train
  at_budget || echo "mixed_m_nobox stopped short of $STEPS steps: the pair is not at the same budget" | tee -a $O/calls.txt
  e=exports/mixed_m  # the box arm as a run folder with one checkpoint (as gpu_lite.sh judge makes them)
  [ -d runs/mixed_m ] || { mkdir -p runs/mixed_m/step_$(printf %06d 13311) && cp -r $e/. runs/mixed_m/step_$(printf %06d 13311)/; }
  bash tools/gpu_lite.sh tables $O test $(left $(( CALL_S - 45 ))) --main mixed_m --ablated mixed_m \
    --only "full, same budget" "without box frames"; stamp tables
  bash tools/gpu_lite.sh ship $O mixed_m_nobox; stamp ship
  bash tools/gpu_lite.sh bundle $O
  ;;
*) echo "unknown call $CALL (data | judge)"; exit 2 ;;
esac

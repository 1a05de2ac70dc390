#!/usr/bin/env bash
# Issue 13: the paper's training-side ablations at the shipped size (6.1M), the same recipe and budget. The main arm
# exists: the first lease of the shipped model (results/gpu_2026-12-06b, `mixed_m`, 13,311 steps from scratch on
# END=mixed rooms ROOMS_BASE=60000 ROOMS_FROM=0, 180 per process: box frames, non-contiguous context). The ablated
# arm trains the same command on the same rooms for the same 13,311 steps with one setting changed, then both are
# scored on the 200 test rooms, paired ("full, same budget" against the arm's row):
#   ARM=nobox (default)  `mixed_m_nobox`, box_frames=false: this lease (README.md beside this file)
#   ARM=contig           `mixed_m_contiguous`, sampling=contiguous (the row also samples its context contiguously at
#                        inference, tables.VARIANTS): not run yet, for a later lease (copy this file into its folder)
# The file as sent in this lease, before ARM was added (the same commands with ARM unset): git show
# 2c1a063:results/gpu_2026-12-06h/calls.sh.
# `run` from the repository root with carry [".site", "exports/mixed_m"] (the main arm's weights: in git history
# only, restored with README.md's command), with the other sessions' results/ folders out of the working tree (the
# 64 MiB that travel), calls back to back (the machine goes 30 s after a call):
#   CALL_S=580 bash results/gpu_2026-12-06h/calls.sh data  $OUT   # 1. training rooms, test rooms, the arm's latent
#                                                                  #    cache; the arm trains from scratch
#   CALL_S=590 bash results/gpu_2026-12-06h/calls.sh data  $OUT   # 2. (warm machine: all kept) on to 13,311 steps
#                                                                  #    (H200: ~19.5 steps/s)
#   CALL_S=600 TABLES_S=560 bash results/gpu_2026-12-06h/calls.sh judge $OUT  # 3. the 400 table tasks (~315 s);
#                                                                  #    then exported
# On an H100 (~16 steps/s) call 2 stops near step 13,000: call 3 trains the rest first (TABLES_S is the time kept for
# the tables; a deadline-cut table is finished on a CPU with `v4s tables --resume`, the rooms rendered from the seeds).
# A dry run on a CPU (minutes; the sha check is skipped only with DEVICE=cpu): [ARM=contig] DEVICE=cpu VAL_N=1 \
#   TEST_N=1 N=1 STEPS=3 WORKERS=2 TRAIN_EXTRA="--set batch_size=2 --set checkpoint_every=1" \
#   bash results/gpu_2026-12-06h/calls.sh data /tmp/dry   (then `judge`)
set -uo pipefail
CALL=${1:?data | judge}; O=${2:?out dir}
ARM=${ARM:-nobox}
case $ARM in
  nobox) RUN=mixed_m_nobox; ROW="without box frames" ;;
  contig) RUN=mixed_m_contiguous; ROW="contiguous context" ;;
  *) echo "ARM=$ARM: expected nobox or contig"; exit 2 ;;
esac
if [ ! -d /tmp/site/diffusers ] && [ -f .site/site.tar.xz ]; then mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site; fi
export PYTHONPATH=/tmp/site:$PWD END=mixed ROOMS_BASE=60000 ROOMS_FROM=0 EVAL_SETS=test ABLATIONS=$ARM MAIN_CACHE=0
export VALIDATE_EVERY=0 CKPT_EVERY=${CKPT_EVERY:-1000}  # no validation probe: it does not change the weights, and
# the main arm's probe cost ~13% of its training time (../gpu_2026-12-06b)
STEPS=${STEPS:-13311}  # the main arm's steps: the budget
export TRAIN_SET="--set steps=$STEPS ${TRAIN_EXTRA:-}"
N=${N:-180}; CALL_S=${CALL_S:-580}
t0=$(date +%s); stamp() { echo "[$1: $(( $(date +%s)-t0 )) s]" | tee -a $O/calls.txt; }
left() { echo $(( $1 - ($(date +%s)-t0) )); }
mkdir -p runs $O
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | tee -a $O/gpu.txt
BOX_SHA=a5bcf2baf6ace758389159dabd3c1b0f7d3b4371fba14700846cc344f412b9cb  # runs/mixed_m/step_013311's EMA, bf16
sha=$(sha256sum exports/mixed_m/diffusion_pytorch_model.safetensors 2>/dev/null | cut -c1-64)
if [ "$sha" != $BOX_SHA ]; then
  echo "exports/mixed_m is not the main arm (sha256 ${sha:-missing}): carry it (README.md beside this file)" | tee -a $O/calls.txt
  [ "${DEVICE:-cuda}" = cpu ] || exit 2
fi
at_budget() { [ -d runs/$RUN/step_$(printf %06d $STEPS) ]; }
case $CALL in
data)
  bash tools/gpu_lite.sh data $O $N; stamp "data + cache (kept when they exist)"
  s=$(left $(( CALL_S - 40 ))); at_budget || { [ $s -gt 60 ] && bash tools/gpu_lite.sh train $O $s $RUN; }
  stamp train
  bash tools/gpu_lite.sh bundle $O
  ;;
judge)
  bash tools/gpu_lite.sh data $O $N; stamp "data + cache (kept when they exist)"
  # the rest of the budget; the tables need ~400 s of the call (400 tasks, ~1.1 a second: ../gpu_2026-12-04e)
  s=$(left $(( CALL_S - ${TABLES_S:-400} ))); at_budget || { [ $s -gt 30 ] && bash tools/gpu_lite.sh train $O $s $RUN; }
  stamp train
  at_budget || echo "$RUN stopped short of $STEPS steps: the pair is not at the same budget" | tee -a $O/calls.txt
  bash tools/gpu_lite.sh asrun $O mixed_m  # the main arm as a run folder with one checkpoint
  bash tools/gpu_lite.sh tables $O test $(left $(( CALL_S - 45 ))) --main mixed_m --ablated mixed_m \
    --only "full, same budget" "$ROW"; stamp tables
  bash tools/gpu_lite.sh ship $O $RUN; stamp ship
  bash tools/gpu_lite.sh bundle $O
  ;;
*) echo "unknown call $CALL (data | judge)"; exit 2 ;;
esac

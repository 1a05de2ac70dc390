#!/usr/bin/env bash
# The calls of the 2026-12-06d lease (twenty-second session): the test tables of the model shipped this session
# (data/v4s-lite = the 6.1M mixed_m_warm export, 27,452 steps; chosen on validation, results/gpu_2026-12-06c). `run`
# from the repository root, carry [".site"], each call <= 600 s:
#   CALL_S=585 bash results/gpu_2026-12-06d/calls.sh tables $OUT      (call 1: renders the test rooms, ~60-90 s)
#   CALL_S=585 TABLES_FROM=results/gpu_2026-12-06d/lite_tables_test.json bash results/gpu_2026-12-06d/calls.sh tables $OUT
#     (calls 2..: `v4s tables --resume` grows the same file; a fresh machine renders the rooms again, byte-identical)
# The rows: the paper's inference ablations of the shipped model, the same rows as the 2.3M model's test tables
# (results/gpu_2026-12-03d/lite_tables_test.json, same rooms and noise seed), plus the context-length row (8 vs 2).
set -uo pipefail
CALL=${1:?tables}; O=${2:?out dir}
if [ ! -d /tmp/site/diffusers ] && [ -f .site/site.tar.xz ]; then mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site; fi
export PYTHONPATH=/tmp/site:$PWD
CALL_S=${CALL_S:-585}
t0=$(date +%s); stamp() { echo "[$1: $(( $(date +%s)-t0 )) s]" | tee -a $O/calls.txt; }
left() { echo $(( $1 - ($(date +%s)-t0) )); }
mkdir -p runs $O
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a $O/gpu.txt
case $CALL in
tables)
  TEST_N=25 EVAL_SETS=test bash tools/gpu_lite.sh evaldata $O; stamp "test rooms (kept when they exist)"
  bash tools/gpu_lite.sh grow $O $(left $(( CALL_S - 25 ))) --main shipped --only "full (joint CFG)" "guidance text" \
    "guidance none" "first frame only (context dropped)" "ground truth through the codec" "OOD scenes" "context 2 chunks"
  stamp tables
  ;;
*) echo "unknown call $CALL (tables)"; exit 2 ;;
esac

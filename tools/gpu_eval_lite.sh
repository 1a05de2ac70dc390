#!/usr/bin/env bash
# Issue 5, stage 2 on one GPU machine: render the held-out sets (seeds disjoint from training), then
# generate + score every condition of the paper's tables (tools/paper_tables.py).
#   bash tools/gpu_eval_lite.sh OUT_DIR [N_ID] [N_OTHER] [DEADLINE_S]
set -uo pipefail
OUT=${1:?out dir}; NID=${2:-20}; NOTH=${3:-10}; DL=${4:-420}
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
V4S="python3 -m v4s_lite.cli"
t0=$(date +%s)
per=$(( (NID + 3) / 4 ))
for k in 0 1 2 3; do $V4S make-data --task grounding --split id --scenes $per --seed $((100000+k*1000)) --clip-config lite \
    --device cuda --out data/lite/heldout --no-progress > /dev/null 2>&1 & done
for k in 0 1; do $V4S make-data --task grounding --split ood --scenes $(( (NOTH+1)/2 )) --seed $((200000+k*20000)) \
    --clip-config lite --device cuda --out data/lite/ood --no-progress > /dev/null 2>&1 & done
for k in 0 1; do $V4S make-data --task navigation --scenes $(( (NOTH+1)/2 )) --seed $((150000+k*1000)) --clip-config lite \
    --device cuda --out data/lite/nav --no-progress > /dev/null 2>&1 & done
wait
echo "held-out data: $(ls data/lite/heldout | wc -l) id, $(ls data/lite/ood | wc -l) ood, $(ls data/lite/nav | wc -l) nav in $(( $(date +%s)-t0 )) s"
python3 tools/paper_tables.py --runs runs --data data/lite --out $OUT/lite_tables.json --device cuda --workers 16 \
    --deadline $DL 2>&1 | grep -v -i warn | tail -n 30

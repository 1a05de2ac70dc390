#!/usr/bin/env bash
# Issue 5, stage 1 on one GPU: render the lite training set, then train the shipped model and the two
# ablation variants side by side (a 2.3M-parameter model leaves the GPU mostly idle, so three runs share it).
#   bash tools/gpu_train_lite.sh OUT_DIR [TRAIN_SECONDS]
# Every step is a plain `v4s` command; the ones a reader needs to rebuild one variant are in data/v4s-lite/README.md.
set -uo pipefail
OUT=${1:?out dir}; SECS=${2:-360}
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
V4S="python3 -m v4s_lite.cli"
mkdir -p runs data/lite $OUT/logs; L=$OUT/logs
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee $OUT/gpu.txt
t0=$(date +%s)
# 16 shards; grounding seeds from 0, navigation from 50000 (held-out sets use 100000+ and 200000+)
for k in $(seq 0 11); do $V4S make-data --task grounding --split id --scenes 60 --seed $((k*1000)) \
    --clip-config lite --device cuda --out data/lite/train --no-progress > $L/mk_g$k.log 2>&1 & done
for k in $(seq 0 3); do $V4S make-data --task navigation --scenes 60 --seed $((50000+k*1000)) \
    --clip-config lite --device cuda --out data/lite/train --no-progress > $L/mk_n$k.log 2>&1 & done
wait
echo "data: $(ls data/lite/train | wc -l) clips in $(( $(date +%s)-t0 )) s" | tee -a $OUT/summary.txt
tail -n 3 $L/mk_g0.log
t1=$(date +%s)
common="--set data_root=data/lite/train --set steps=20000 --set checkpoint_every=300 --set progress=false --set lr=0.001 --set warmup_steps=200 --set context_views=2"
# the three runs share the 16 cores for decoding and encoding the clips
export OMP_NUM_THREADS=5
timeout -s INT $SECS $V4S train configs/lite.yaml $common --set out_dir=runs/lite > $L/train_main.log 2>&1 &
timeout -s INT $SECS $V4S train configs/lite.yaml $common --set out_dir=runs/lite_contiguous --set sampling=contiguous > $L/train_contig.log 2>&1 &
timeout -s INT $SECS $V4S train configs/lite.yaml $common --set out_dir=runs/lite_nobox --set box_frames=false > $L/train_nobox.log 2>&1 &
wait
echo "train: $(( $(date +%s)-t1 )) s wall for the three runs" | tee -a $OUT/summary.txt
for r in lite lite_contiguous lite_nobox; do
  cp runs/$r/loss.jsonl $L/$r.loss.jsonl 2>/dev/null
  last=$(ls -d runs/$r/step_* | sort | tail -n 1)
  echo "$r: $last, last log: $(tail -n 1 runs/$r/loss.jsonl)" | tee -a $OUT/summary.txt
  tar czf $OUT/$r.tgz runs/$r/config.yaml runs/$r/loss.jsonl $last/trainer_state.json $last/transformer_ema $last/transformer/config.json
done
tar czf $OUT/logs.tgz -C $OUT logs && rm -r $OUT/logs
ls -la $OUT

#!/usr/bin/env bash
# Issues 5 and 6 on one GPU machine, in phases that each fit one 10-minute device call. A warm machine keeps
# data/lite and runs/ (ignored paths) between calls, so the phases can follow each other:
#   bash tools/gpu_lite.sh data  OUT [N_GROUND_PER_SHARD]   # training clips (12 + 4 shards) and held-out clips
#   bash tools/gpu_lite.sh train OUT SECS RUN [RUN ...]     # train or resume the runs side by side for SECS s
#                                                           (then SIGINT: each run checkpoints its last step)
#   bash tools/gpu_lite.sh eval  OUT DEADLINE [v4s eval options]     # the tables -> OUT/lite_tables.json
# RUN is a folder name under runs/: lite (the shipped model), lite_contiguous, lite_nobox, lite_ctxonly, and
# lite_more (the shipped model in data/v4s-lite/ trained further).
# Each training line is a plain `v4s train configs/lite.yaml --set ...` command (printed into the log).
set -uo pipefail
PHASE=${1:?phase}; OUT=${2:?out dir}; shift 2
export PYTHONUNBUFFERED=1
V4S="python3 -m v4s_lite.cli"
mkdir -p runs data/lite $OUT
run_dir() { if [ "$1" = lite_more ]; then echo runs/lite; else echo runs/$1; fi; }
t0=$(date +%s)
case $PHASE in
data)
  N=${1:-120}
  export OMP_NUM_THREADS=1
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee $OUT/gpu.txt
  # training: grounding seeds k*1000 (k < 12), navigation 50000 + k*1000; held-out from 100000 (id),
  # 150000 (navigation), 200000 (ood): disjoint seed ranges, so no held-out room is ever trained on
  for k in $(seq 0 11); do $V4S make-data --task grounding --split id --scenes $N --seed $((k*1000)) \
      --clip-config lite --device cuda --out data/lite/train --no-progress > $OUT/mk_g$k.log 2>&1 & done
  for k in $(seq 0 3); do $V4S make-data --task navigation --scenes $N --seed $((50000+k*1000)) \
      --clip-config lite --device cuda --out data/lite/train --no-progress > $OUT/mk_n$k.log 2>&1 & done
  for k in 0 1 2 3; do $V4S make-data --task grounding --split id --scenes 6 --seed $((100000+k*1000)) \
      --clip-config lite --device cuda --out data/lite/heldout --no-progress > /dev/null 2>&1 & done
  for k in 0 1; do $V4S make-data --task grounding --split ood --scenes 6 --seed $((200000+k*20000)) \
      --clip-config lite --device cuda --out data/lite/ood --no-progress > /dev/null 2>&1 & done
  for k in 0 1; do $V4S make-data --task navigation --scenes 6 --seed $((150000+k*1000)) \
      --clip-config lite --device cuda --out data/lite/nav --no-progress > /dev/null 2>&1 & done
  wait
  echo "data: $(ls data/lite/train | wc -l) training clips; held-out $(ls data/lite/heldout | wc -l) id," \
       "$(ls data/lite/ood | wc -l) ood, $(ls data/lite/nav | wc -l) nav; $(( $(date +%s)-t0 )) s" | tee -a $OUT/summary.txt
  # encode once per data setting (lite and lite_ctxonly share one): 2026-12-01 lost 141 s per view to this
  # in every run and every resume
  enc="$V4S train configs/lite.yaml --encode-only --set data_root=data/lite/train --set progress=false --set num_workers=5"
  $enc > $OUT/enc_main.log 2>&1 &
  $enc --set sampling=contiguous > $OUT/enc_contig.log 2>&1 &
  $enc --set box_frames=false > $OUT/enc_nobox.log 2>&1 &
  wait
  tail -n 1 $OUT/enc_*.log | tee -a $OUT/summary.txt
  echo "encoded: $(( $(date +%s)-t0 )) s" | tee -a $OUT/summary.txt
  ;;
train)
  SECS=${1:?seconds}; shift
  n=$#; export OMP_NUM_THREADS=$(( 16 / n ))
  # batches travel from the batch workers through /dev/shm (about 32 MB each at batch 64): only with room for it
  shm=$(df -k --output=avail /dev/shm 2>/dev/null | tail -n 1); bw=4; [ "${shm:-0}" -lt 2000000 ] && bw=0
  echo "/dev/shm free: ${shm:-?} kB -> batch_workers=$bw" | tee -a $OUT/summary.txt
  common="--set data_root=data/lite/train --set progress=false --set checkpoint_every=250 --set batch_workers=$bw"
  for r in "$@"; do
    case $r in
      lite) extra="" ;;
      lite_contiguous) extra="--set sampling=contiguous" ;;
      lite_nobox) extra="--set box_frames=false" ;;
      lite_ctxonly) extra="--set context_attention=context_only" ;;
      # the shipped model trained further: its weights carry with the checkpoint (a run's optimizer state plus the
      # wheels would not fit the 64 MiB carry), so a fresh optimizer with a short warm-up
      # (it writes runs/lite, the folder `eval` scores: give it instead of lite)
      lite_more) extra="--set init_from=data/v4s-lite --set warmup_steps=100" ;;
      *) echo "unknown run $r"; exit 2 ;;
    esac
    resume=""; ls -d $(run_dir $r)/step_* > /dev/null 2>&1 && resume="--resume"
    cmd="$V4S train configs/lite.yaml $common --set out_dir=$(run_dir $r) $extra $resume"
    echo "$cmd" | tee -a $OUT/train_$r.log
    timeout -s INT $SECS $cmd >> $OUT/train_$r.log 2>&1 &
  done
  wait
  for r in "$@"; do
    d=$(run_dir $r); last=$(ls -d $d/step_* | sort | tail -n 1)
    echo "$r: $last, last log: $(tail -n 1 $d/loss.jsonl)" | tee -a $OUT/summary.txt
    tar czf $OUT/$r.tgz $d/config.yaml $d/loss.jsonl $last/trainer_state.json $last/transformer_ema
  done
  echo "train: $(( $(date +%s)-t0 )) s wall for $*" | tee -a $OUT/summary.txt
  # the cheap early signal: does the model denoise worse with another room's context? (tools/condition_gaps.py)
  last=$(ls -d $(run_dir $1)/step_* | sort | tail -n 1)
  OMP_NUM_THREADS=8 python3 tools/condition_gaps.py $last --data data/lite/heldout --max-clips 8 --device cuda 2>&1 \
      | grep "^|" | tee -a $OUT/summary.txt
  ;;
eval)
  DL=${1:?deadline}; shift
  export OMP_NUM_THREADS=1
  $V4S eval --runs runs --data data/lite --out $OUT/lite_tables.json --device cuda --workers 16 --deadline $DL "$@" \
      2>&1 | grep -v -i warn | tail -n 40 | tee -a $OUT/summary.txt
  ;;
esac
tail -n 3 $OUT/*.log 2>/dev/null | tail -n 60 > $OUT/log_tails.txt
tar czf $OUT/logs.tgz -C $OUT $(cd $OUT && ls *.log 2>/dev/null) 2>/dev/null && rm -f $OUT/*.log

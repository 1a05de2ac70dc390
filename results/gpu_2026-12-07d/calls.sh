#!/usr/bin/env bash
# The thirty-first session's lease (2026-12-07d): size at length. README.md beside this file holds the design and the
# rule, written before the lease. The same command, sent back to back, from the repository root, carry [".site"]:
#   CALL_S=580 bash results/gpu_2026-12-07d/calls.sh $OUT            # calls 1 and 2: data, then lite_l trains
#   FINAL=1 CALL_S=<what is left - 20> bash results/gpu_2026-12-07d/calls.sh $OUT   # the last: trains on until
#                                               # VAL_S + 40 s are left, exports, scores the 200 validation rooms
#                                               # (VAL_S=0: no validation rows, all the call's time to training)
# Each call goes on from what the warm machine keeps: (1) the 200 validation rooms, rendered in the background from the
# call's first second, 1 thread per process (as ../gpu_2026-12-06g rendered them: its stored shipped row pairs with
# them); (2) the training rooms of the shipped model's first lease (../gpu_2026-12-06b: END=mixed, ROOMS_BASE=60000,
# ROOMS_FROM=0, 180 per process), its 64 val_end rooms for the condition gaps and the 64 val rooms, and the cache;
# (3) lite_l (17.1M) from scratch with the 6.1M run's recipe; (4, FINAL) export, then "full: lite_l" on the 200
# validation rooms; (5, FINAL, time left) "full: lite_l" on the 64 val rooms (pairs with ../gpu_2026-12-06b's stored
# GPU row of the 6.1M model at 13,311 steps).
# Dry run on a CPU (minutes; in a git worktree so local data is not touched): DEVICE=cpu N=1 NV=1 VAL_N=1 WORKERS=2
#   CKPT_EVERY=2 VALIDATE_EVERY=2 TRAIN_EXTRA="--set batch_size=2 --set warmup_steps=1 --set compile=false"
#   CALL_S=150 bash results/gpu_2026-12-07d/calls.sh /tmp/dry, then FINAL=1 VAL_S=60 with the same settings
set -uo pipefail
O=${1:?out dir}
SHIPPED=af4ce05a65c2b457decd8b5d7cc04b0a19f2f71a774bb4c58d6660afe8f397cd
if ! echo "$SHIPPED  data/v4s-lite/diffusion_pytorch_model.safetensors" | sha256sum -c --status; then
  echo "data/v4s-lite does not hold the shipped 6.1M weights"; exit 2
fi
if [ ! -d /tmp/site/diffusers ] && [ -f .site/site.tar.xz ]; then mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site; fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 END=mixed ROOMS_BASE=60000 ROOMS_FROM=0
export EVAL_SETS="val val_end" VALIDATE_ON=val_end VALIDATE_EVERY=${VALIDATE_EVERY:-2000} CKPT_EVERY=${CKPT_EVERY:-1000}
export ABLATIONS=0 TRAIN_SET="${TRAIN_EXTRA:-}" WORKERS=${WORKERS:-16}
N=${N:-180}; NV=${NV:-50}; CALL_S=${CALL_S:-580}; FINAL=${FINAL:-0}; VAL_S=${VAL_S:-300}; DEV=${DEVICE:-cuda}
RUN=lite_l; V4S="python3 -m v4s_lite.cli"
t0=$(date +%s); stamp() { echo "[$1: $(( $(date +%s)-t0 )) s]" | tee -a $O/calls.txt; }
left() { echo $(( CALL_S - ($(date +%s)-t0) - $1 )); }  # seconds of the call left, keeping $1 for what follows
mkdir -p runs $O data
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>&1 | tee -a $O/gpu.txt
# 1. the 200 validation rooms (seeds 300,016-300,065 + k x 1,000), in the background from the start, detached (a call's
# end does not stop them; the next call finds .done), 1 thread per process: ../gpu_2026-12-07b's, started beside
# training at 2 threads, had not finished in 330 s (they compete with the renderer of the training rooms here instead)
if [ ! -f data/val200/.done ] && ! pgrep -f "out data/val200/id" > /dev/null; then
  rm -rf data/val200
  setsid nohup bash -c 'for k in 0 1 2 3; do OMP_NUM_THREADS=1 '"$V4S"' make-data --task grounding --split id --scenes '$NV' --seed $((300016+k*1000)) \
    --clip-config lite --device '$DEV' --out data/val200/id --no-progress --scan random > /dev/null 2>> data/val200_errors.log & done; wait
    mkdir -p data/val200/ood data/val200/nav; touch data/val200/.done' > /dev/null 2>&1 < /dev/null &
  stamp "val200 started in the background"
fi
# 2. training rooms, val + val_end (the gaps' 32 rooms), the cache (all kept on a warm machine)
bash tools/gpu_lite.sh data $O $N; stamp "training rooms, val sets, cache"
# 3. lite_l from scratch (tools/gpu_lite.sh: model=lite_l, lr 6e-4; --resume on a warm machine)
keep=$([ $FINAL = 1 ] && echo $(( VAL_S + 40 )) || echo 15)
s=$(left $keep); [ $s -gt 45 ] && { bash tools/gpu_lite.sh train $O $s $RUN; stamp train; }
cp runs/$RUN/validation.jsonl $O/validation_$RUN.jsonl 2>/dev/null
if [ $FINAL = 1 ]; then
  # 4. the export (bf16, shards of <= 15 MB), then the rule's row on the 200 validation rooms
  bash tools/gpu_lite.sh ship $O $RUN; stamp ship
  [ $VAL_S = 0 ] && { echo "VAL_S=0: no validation rows (README.md, Budget)" | tee -a $O/calls.txt; bash tools/gpu_lite.sh bundle $O; exit 0; }
  for i in $(seq 1 60); do [ -f data/val200/.done ] && break; sleep 2; done
  VAL=runs/val200_size.json; dl=$(left 15)
  [ -f data/val200/.done ] || { echo "val200 not rendered: call again with FINAL=1" | tee -a $O/calls.txt; dl=0; }
  [ $dl -gt 20 ] && OMP_NUM_THREADS=1 $V4S tables --runs runs --main $RUN --also $RUN --only "full: $RUN" \
    --data data/val200 --out $VAL --resume --device $DEV --workers $WORKERS --deadline $dl 2>&1 | grep -v -i warn \
    | tail -n 20 | tee -a $O/summary.txt
  [ -f $VAL ] && cp $VAL $O/; stamp "validation rows (200)"
  # 5. with time left: the same row on the 64 val rooms
  dl=$(left 10)
  [ $dl -gt 40 ] && OMP_NUM_THREADS=1 $V4S tables --runs runs --main $RUN --also $RUN --only "full: $RUN" \
    --data data/lite_mixed/val --out runs/val64_size.json --resume --device $DEV --workers $WORKERS --deadline $dl 2>&1 \
    | grep -v -i warn | tail -n 8 | tee -a $O/summary.txt
  [ -f runs/val64_size.json ] && cp runs/val64_size.json $O/; stamp "validation rows (64)"
fi
bash tools/gpu_lite.sh bundle $O

#!/usr/bin/env bash
# Several GPUs of one machine (issue 16), Wan2.2-TI2V-5B with random weights of the exact architecture at the paper's
# training shape (paper_train: 169 context frames). Not run yet: no multi-GPU machine was lent. Phases each fit one
# 10-minute device call on a warm machine (models/, data/paper/, runs/ are kept between calls):
#   bash tools/gpu_multi.sh prepare OUT N [CLIPS]   # random 5B folder, CLIPS paper clips, the latent cache filled by
#                                                   # N processes in one pass (each encodes its share)
#   bash tools/gpu_multi.sh equal OUT N [STEPS]     # the same global batch (N samples) on 1 GPU (grad_accum_steps=N)
#                                                   # and on N GPUs (1 each), STEPS steps: max |loss difference|
#   bash tools/gpu_multi.sh speed OUT N [STEPS]     # steps/s per GPU: LoRA DDP on 1 and N GPUs, full fine-tuning with
#                                                   # FSDP2 on N GPUs (global batch N, 1 sample per GPU)
# Results: OUT/*.json (tools/multi_gpu_report.py), OUT/commands.txt (every command), OUT/summary.txt.
# OUT is a results/ folder, e.g. results/multi_gpu_$(date +%F).
set -uo pipefail
PHASE=${1:?phase: prepare | equal | speed}; OUT=${2:?out dir}; N=${3:?number of GPUs}; shift 3
export PYTHONUNBUFFERED=1
mkdir -p $OUT models data/paper runs
t0=$(date +%s)
stamp() { echo "$1: $(( $(date +%s)-t0 )) s" | tee -a $OUT/summary.txt; }
run() { echo "$*" >> $OUT/commands.txt; "$@"; }
V4S="python3 -m v4s_lite.cli"
# N processes, one per GPU; DDP unless the phase passes the FSDP2 config
launch() { local conf=$1; shift; run accelerate launch --config_file $conf --num_processes $N -m v4s_lite.cli "$@"; }
DDP=configs/accelerate/ddp_${N}gpu.yaml; [ -f $DDP ] || DDP=configs/accelerate/ddp_8gpu.yaml  # --num_processes wins
FSDP=configs/accelerate/fsdp2_8gpu.yaml
WAN=models/wan22_random_5b
CFG=configs/wan22_ti2v_5b.yaml
SET=(--set wan.source=$WAN --set data_root=data/paper/train --set latent_cache=data/paper/latents
     --set progress=false --set log_every=1 --set validate_every=0)
REPORT="python3 tools/multi_gpu_report.py"
case $PHASE in
prepare)
  CLIPS=${1:-16}
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee $OUT/gpu.txt || true
  [ -f $WAN/model_index.json ] || run $V4S wan-random $WAN --size 5b --device cuda
  stamp "random 5B folder"
  for k in $(seq 0 $((CLIPS-1))); do  # one clip per process, spread over the GPUs
    CUDA_VISIBLE_DEVICES=$((k % N)) run $V4S make-data --task grounding --scenes 1 --seed $k --clip-config paper \
      --device cuda --out data/paper/train --no-progress > /dev/null 2>> $OUT/errors.log &
  done
  wait
  stamp "clips ($(ls data/paper/train | wc -l))"
  launch $DDP train $CFG "${SET[@]}" --encode-only 2>&1 | grep -v -i warn | tail -n 3 | tee -a $OUT/summary.txt
  stamp "latent cache filled by $N processes"
  ;;
equal)
  STEPS=${1:-50}
  COMMON=("${SET[@]}" --set steps=$STEPS --set checkpoint_every=$STEPS --set batch_size=$N)
  run $V4S wan-train $CFG "${COMMON[@]}" --set grad_accum_steps=$N --set out_dir=runs/multi_equal_1gpu \
    2>&1 | grep -v -i warn | tail -n 3 | tee -a $OUT/summary.txt
  stamp "1 GPU, $N micro-steps of 1"
  launch $DDP wan-train $CFG "${COMMON[@]}" --set out_dir=runs/multi_equal_${N}gpu \
    2>&1 | grep -v -i warn | tail -n 3 | tee -a $OUT/summary.txt
  stamp "$N GPUs, 1 sample each"
  run $REPORT losses runs/multi_equal_1gpu runs/multi_equal_${N}gpu --out $OUT/equal_1_vs_${N}gpu.json
  ;;
speed)
  STEPS=${1:-30}
  COMMON=("${SET[@]}" --set steps=$STEPS --set checkpoint_every=$STEPS)
  run $V4S wan-train $CFG "${COMMON[@]}" --set batch_size=1 --set out_dir=runs/multi_speed_lora_1gpu \
    2>&1 | grep -v -i warn | tail -n 2 | tee -a $OUT/summary.txt
  run $REPORT speed 1 runs/multi_speed_lora_1gpu --out $OUT/speed_lora_ddp_1gpu.json
  stamp "LoRA, 1 GPU"
  launch $DDP wan-train $CFG "${COMMON[@]}" --set batch_size=$N --set out_dir=runs/multi_speed_lora_${N}gpu \
    2>&1 | grep -v -i warn | tail -n 2 | tee -a $OUT/summary.txt
  run $REPORT speed $N runs/multi_speed_lora_${N}gpu --out $OUT/speed_lora_ddp_${N}gpu.json
  stamp "LoRA, DDP on $N GPUs"
  launch $FSDP wan-train $CFG "${COMMON[@]}" --set batch_size=$N --set parallel=fsdp --set lora_rank=0 \
    --set ema_decay=0 --set lr=1e-5 --set out_dir=runs/multi_speed_full_fsdp_${N}gpu \
    2>&1 | grep -v -i warn | tail -n 2 | tee -a $OUT/summary.txt
  run $REPORT speed $N runs/multi_speed_full_fsdp_${N}gpu --out $OUT/speed_full_fsdp_${N}gpu.json
  stamp "full fine-tuning, FSDP2 on $N GPUs"
  ;;
*) echo "unknown phase $PHASE (prepare | equal | speed)"; exit 2 ;;
esac

#!/usr/bin/env bash
# Repeated sampling with the agreement rule (README.md: the rule and the choice, written before the run). One lease,
# calls sent back to back from the repository root, carry [".site"], each resuming what the last left:
#   CALL_S=590 bash results/gpu_2026-12-07g/calls.sh $OUT
# Phase order: render the 200 validation rooms (300,000 + k*1,000 + 16..65, k = 0..3) and the 200 test rooms
# (400,000 + k*1,000 + 0..24, k = 0..7) on the GPU; 3 tries of the shipped model on the test rooms (read only after
# the validation choice is committed); the same on the validation rooms (reported beside the 64); then the 8 test rooms
# ../gpu_2026-12-07e left at 3 tries grown to 8 (that report's rule, nothing chosen).
# Dry run on a CPU: DEVICE=cpu N_VAL=1 N_TEST=1 WORKERS=2 DATA=/tmp/dry/lite bash results/gpu_2026-12-07g/calls.sh /tmp/dry
set -uo pipefail
O=${1:?out dir}
SHIPPED=af4ce05a65c2b457decd8b5d7cc04b0a19f2f71a774bb4c58d6660afe8f397cd
echo "$SHIPPED  data/v4s-lite/diffusion_pytorch_model.safetensors" | sha256sum -c --status || { echo "not the shipped weights"; exit 2; }
if [ ! -d /tmp/site/diffusers ] && [ -f .site/site.tar.xz ]; then mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site; fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
DEVICE=${DEVICE:-cuda} WORKERS=${WORKERS:-16} DATA=${DATA:-data/lite} N_VAL=${N_VAL:-50} N_TEST=${N_TEST:-25}
CALL_S=${CALL_S:-590}; t0=$(date +%s)
left() { echo $(( CALL_S - ($(date +%s)-t0) - 15 )); }
V4S="python3 -m v4s_lite.cli"
mkdir -p runs $O
nvidia-smi --query-gpu=name --format=csv,noheader 2>&1 | tee -a $O/gpu.txt
bash tools/gpu_lite.sh shipped $O > /dev/null  # data/v4s-lite as runs/shipped
made="N_VAL=$N_VAL N_TEST=$N_TEST PHASES=${PHASES:-}"
if [ "$(cat $DATA/.rooms_07g 2>/dev/null)" != "$made" ]; then
  rm -rf $DATA/val $DATA/test
  [ "${PHASES:-val}" = test ] || for k in 0 1 2 3; do $V4S make-data --task grounding --split id --scenes $N_VAL --seed $((300016+k*1000)) \
    --clip-config lite --device $DEVICE --out $DATA/val/id --no-progress > /dev/null & done
  for k in $(seq 0 7); do $V4S make-data --task grounding --split id --scenes $N_TEST --seed $((400000+k*1000)) \
    --clip-config lite --device $DEVICE --out $DATA/test/id --no-progress > /dev/null & done
  wait
  echo "$made" > $DATA/.rooms_07g
  echo "rooms: val $(ls $DATA/val/id | wc -l), test $(ls $DATA/test/id | wc -l) [$(( $(date +%s)-t0 )) s]" | tee -a $O/summary.txt
fi
tries() {  # tries SET FILE N [from]: the shipped model's N tries on SET, resumed in FILE (from: the file to grow)
  local T=runs/$2
  [ -f $T ] || [ -z "${4:-}" ] || xz -dc $4 > $T
  [ $(left) -gt 30 ] || return 0
  $V4S tables --runs runs --data $DATA/$1 --out $T --main shipped --tries $3 --only "full (joint CFG)" \
    --device $DEVICE --workers $WORKERS --resume --deadline $(left) 2>&1 | grep -v -i warn | tail -n 4 | tee -a $O/summary.txt
  cp $T $O/ 2>/dev/null
  echo "$1 $2 [$(( $(date +%s)-t0 )) s]" | tee -a $O/summary.txt
}
# the choice is made on this CPU's 64 validation rooms (README.md): test first; PHASES=test: the test rooms alone
for p in ${PHASES:-test val grow}; do case $p in
  test) tries test tries_test200_3.json 3 ;;
  val) tries val tries_val200_3.json 3 ;;
  grow) tries test tries_test200.json 8 results/gpu_2026-12-07e/tries_test200_8.json.xz ;;  # 07e's 8 rooms at 3 tries
esac; done
echo "[$(( $(date +%s)-t0 )) s]" | tee -a $O/summary.txt

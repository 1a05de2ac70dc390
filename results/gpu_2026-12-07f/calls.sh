#!/usr/bin/env bash
# The colour rule of repeated sampling (../cpu_2026-12-07b) on the GPU, README.md beside this. From the repository
# root, carry [".site"], the calls sent back to back:
#   PHASE=val  CALL_S=580 bash results/gpu_2026-12-07f/calls.sh $OUT  # 8 tries on the 64 validation rooms (~7.5 min)
#   PHASE=test CALL_S=580 bash results/gpu_2026-12-07f/calls.sh $OUT  # n chosen on those, the 200 test rooms grown to
#                                                                     # n tries (again until done: --resume)
# A fresh machine starts each phase from the files committed here (runs/ does not outlive the machine).
# Dry run on a CPU: DEVICE=cpu VAL_N=1 TEST_N=1 WORKERS=2 PHASE=val bash results/gpu_2026-12-07f/calls.sh /tmp/dry
set -uo pipefail
O=${1:?out dir}
R=results/gpu_2026-12-07f
SHIPPED=af4ce05a65c2b457decd8b5d7cc04b0a19f2f71a774bb4c58d6660afe8f397cd
echo "$SHIPPED  data/v4s-lite/diffusion_pytorch_model.safetensors" | sha256sum -c --status || { echo "not the shipped weights"; exit 2; }
if [ ! -d /tmp/site/diffusers ] && [ -f .site/site.tar.xz ]; then mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site; fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 VAL_N=${VAL_N:-16} TEST_N=${TEST_N:-25} WORKERS=${WORKERS:-16}
RULE=${RULE:-named colour in the box}
CALL_S=${CALL_S:-580}; t0=$(date +%s)
mkdir -p runs $O
nvidia-smi --query-gpu=name --format=csv,noheader 2>&1 | tee $O/gpu.txt
table() {  # table SET OUT TRIES: the shipped model's full row with TRIES tries, grown from what OUT holds
  [ -f runs/$2 ] || { [ -f $R/$2.xz ] && xz -dc $R/$2.xz > runs/$2; }
  OMP_NUM_THREADS=1 python3 -m v4s_lite.cli tables --runs runs --data data/lite/$1 --out runs/$2 --main shipped \
    --tries $3 --only "full (joint CFG)" --device ${DEVICE:-cuda} --workers $WORKERS --resume \
    --deadline $(( CALL_S - ($(date +%s)-t0) - 15 )) 2>&1 | grep -v -i warn | tail -n 20 | tee -a $O/summary.txt
  cp runs/$2 $O/
}
bash tools/gpu_lite.sh shipped $O  # data/v4s-lite as runs/shipped
case ${PHASE:?PHASE=val or test} in
  val) EVAL_SETS=val bash tools/gpu_lite.sh evaldata $O
       table val tries_val64_colour.json 8 ;;
  test) EVAL_SETS=test bash tools/gpu_lite.sh evaldata $O
        [ -f runs/tries_val64_colour.json ] || xz -dc $R/tries_val64_colour.json.xz > runs/tries_val64_colour.json
        N=$(python3 results/gpu_2026-12-07e/tries_n.py runs/tries_val64_colour.json --choose --print-n --rule "$RULE")
        echo "tries chosen on validation with the rule '$RULE': $N" | tee -a $O/summary.txt
        table test tries_test200_colour.json $N ;;
  *) echo "PHASE=$PHASE: expected val or test"; exit 2 ;;
esac
echo "[$(( $(date +%s)-t0 )) s]" | tee -a $O/summary.txt

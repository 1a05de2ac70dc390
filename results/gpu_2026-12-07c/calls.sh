#!/usr/bin/env bash
# Repeated sampling, the course's adopted rule (evaluate.PICK, "final-view residual", 3 tries; chosen on 64 validation
# rooms, ../cpu_2026-12-06) reported on all 200 test rooms on the GPU (it was reported on the first 64, on a CPU).
# Nothing is chosen here. Try 1 must equal the shipped model's stored GPU test row (../gpu_2026-12-06d). One call,
# from the repository root, carry [".site"]:   CALL_S=560 bash results/gpu_2026-12-07c/calls.sh $OUT
# then here: python results/cpu_2026-12-05b/tries_analyse.py OUT/tries_test200.json --rule "final-view residual" --n 3
#   --check results/gpu_2026-12-06d/lite_tables_test.json.xz --check-row "full (joint CFG)"
# Dry run on a CPU: DEVICE=cpu TEST_N=1 WORKERS=2 bash results/gpu_2026-12-07c/calls.sh /tmp/dry
set -uo pipefail
O=${1:?out dir}
SHIPPED=af4ce05a65c2b457decd8b5d7cc04b0a19f2f71a774bb4c58d6660afe8f397cd
echo "$SHIPPED  data/v4s-lite/diffusion_pytorch_model.safetensors" | sha256sum -c --status || { echo "not the shipped weights"; exit 2; }
if [ ! -d /tmp/site/diffusers ] && [ -f .site/site.tar.xz ]; then mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site; fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 EVAL_SETS=test TEST_N=${TEST_N:-25} WORKERS=${WORKERS:-16}
CALL_S=${CALL_S:-560}; t0=$(date +%s)
mkdir -p runs $O
nvidia-smi --query-gpu=name --format=csv,noheader 2>&1 | tee $O/gpu.txt
bash tools/gpu_lite.sh evaldata $O  # the 200 test rooms (data/lite/test/id), as the stored test row's folder
bash tools/gpu_lite.sh shipped $O  # data/v4s-lite as runs/shipped
T=runs/tries_test200.json
# a fresh machine starts from the committed 187 rooms (added in the thirtieth session; `--resume` checks that the
# stored rows' checkpoint, seed, tries and evaluation set are this call's, and scores only the 13 rooms left)
[ -f $T ] || xz -dc results/gpu_2026-12-07c/tries_test200.json.xz > $T
OMP_NUM_THREADS=1 python3 -m v4s_lite.cli tables --runs runs --data data/lite/test --out $T --main shipped --tries 3 \
  --only "full (joint CFG)" --device ${DEVICE:-cuda} --workers $WORKERS --resume \
  --deadline $(( CALL_S - ($(date +%s)-t0) - 15 )) 2>&1 | grep -v -i warn | tail -n 20 | tee $O/summary.txt
cp $T $O/ 2>/dev/null; echo "[$(( $(date +%s)-t0 )) s]" | tee -a $O/summary.txt

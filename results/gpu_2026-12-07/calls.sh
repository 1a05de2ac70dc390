#!/usr/bin/env bash
# Prepared for a later lease (one call, ~8 min on an H100): the row "full, same budget, contiguous context at
# inference" (the non-contiguous arm shown contiguous context, tables.CONTIGUOUS_AT_INFERENCE) on all 200 test rooms
# on the GPU, so that it pairs on one device with the lease's two rows (this session made it on the CPU for the
# rooms its time allowed: README.md beside this file). `run` from the repository root, carry [".site",
# "exports/mixed_m"] (restored as ../gpu_2026-12-06h/README.md says), the other sessions' results/ folders out of the
# working tree as there:
#   bash results/gpu_2026-12-07/calls.sh $OUT
# Dry run on a CPU (minutes): DEVICE=cpu TEST_N=1 bash results/gpu_2026-12-07/calls.sh /tmp/dry
set -uo pipefail
O=${1:?out dir}
if [ ! -d /tmp/site/diffusers ] && [ -f .site/site.tar.xz ]; then mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site; fi
export PYTHONPATH=/tmp/site:$PWD END=mixed EVAL_SETS=test
mkdir -p runs $O
sha=$(sha256sum exports/mixed_m/diffusion_pytorch_model.safetensors 2>/dev/null | cut -c1-64)
[ "$sha" = a5bcf2baf6ace758389159dabd3c1b0f7d3b4371fba14700846cc344f412b9cb ] || {
  echo "exports/mixed_m is not the non-contiguous arm (sha256 ${sha:-missing})" | tee -a $O/calls.txt
  [ "${DEVICE:-cuda}" = cpu ] || exit 2; }
bash tools/gpu_lite.sh evaldata $O  # the 200 in-distribution test rooms (and the nav / OOD sets) from their seeds
bash tools/gpu_lite.sh asrun $O mixed_m
# the contiguous arm's folder names the budget the row is compared at (tables.conditions: its latest step); its
# weights are not needed (its row is in lease/lite_tables_test.json.xz) and do not fit the 64 MiB that travel
mkdir -p runs/mixed_m_contiguous/step_013311
bash tools/gpu_lite.sh tables $O test 420 --main mixed_m --ablated mixed_m \
  --only "full, same budget, contiguous context at inference"

#!/usr/bin/env bash
# The three device calls of 2026-12-03 (third session), as sent (`run`, carry [".site"], from the repository root):
#   bash results/gpu_2026-12-03c/calls.sh call1 $OUT    # fresh machine: the training-loop benchmark (issue 13), the
#                                                      # val / test sets, the shipped model's test tables grown with
#                                                      # the judge on the GPU, then on the CPUs (issue 12: which is faster)
#   bash results/gpu_2026-12-03c/calls.sh call2 $OUT    # warm: the random-weight 5B folder, paper-shape clips and their
#                                                      # cache (issue 14) while the test tables grow on the CPUs; then
#                                                      # wan-train stopped by SIGINT and resumed
#   bash results/gpu_2026-12-03c/calls.sh call3 $OUT    # warm: the 24 GB config's step, export -> stock WanPipeline ->
#                                                      # v4s sample -> v4s eval --checkpoint (scored), beside the tables
# Each call installs the carried wheels only where the machine lacks them, so a call that lands on a fresh machine
# still runs (without what earlier calls left in data/ and runs/).
set -uo pipefail
CALL=${1:?call1 | call2 | call3}; O=${2:?out dir}
# (carry [".site"]: the four wheels of .whl/ unpacked into one tar.xz, 28 MB instead of 45, because the tracked tree
# (25 MB) and .whl/ no longer fit the 64 MiB a call carries; unpacking a pure wheel is what `pip --target` does)
if [ ! -d /tmp/site/diffusers ]; then
  if [ -f .site/site.tar.xz ]; then mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site
  else python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl; fi
fi
export PYTHONPATH=/tmp/site:$PWD
export TABLES_FROM=results/lite_2026-12-03/lite_tables_test.json  # the shipped model's first 56 test rooms
ROWS=("full (joint CFG)" "guidance text" "OOD scenes")  # the headline, its paired partner, OOD: all 200 / 100 rooms first
MORE=("guidance none" "first frame only (context dropped)" "ground truth through the codec")
t0=$(date +%s); stamp() { echo "[$1: $(( $(date +%s)-t0 )) s]" | tee -a $O/calls.txt; }
case $CALL in
call1)
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee $O/gpu.txt
  timeout 240 bash tools/gpu_lite.sh bench $O 25; stamp bench  # capped: the call has more to do
  bash tools/gpu_lite.sh evaldata $O; stamp evaldata
  bash tools/gpu_lite.sh grow $O 140 --main shipped --only "${ROWS[@]}"; stamp "grow, judge on the GPU"
  JUDGE_DEVICE=cpu bash tools/gpu_lite.sh grow $O 140 --main shipped --only "${ROWS[@]}"; stamp "grow, judge on the CPUs"
  ;;
call2)
  JUDGE_DEVICE=cpu WORKERS=11 bash tools/gpu_lite.sh grow $O 330 --main shipped --only "${ROWS[@]}" > $O/grow.log 2>&1 &
  # a resumed table is one table only if the rooms and the run reproduce: 2 of the kept rooms, scored again
  (python3 -m v4s_lite.cli tables --runs runs --data data/lite/test --out $O/recheck.json --main shipped --device cuda \
    --workers 4 --judge-device cpu --max-clips 2 --only "full (joint CFG)" "ground truth through the codec" \
    > $O/recheck.log 2>&1
  python3 - $O/recheck.json $TABLES_FROM <<'PY' | tee -a $O/calls.txt
import json, math, sys
a, b = (json.load(open(f))["conditions"] for f in sys.argv[1:3])
for c in a:
    for clip, m in a[c]["per_clip"].items():
        o = b[c]["per_clip"][clip]
        num = [k for k in m if isinstance(m[k], (int, float)) and isinstance(o.get(k), (int, float))
               and not (isinstance(m[k], float) and math.isnan(m[k]))]
        d = max(abs(m[k] - o[k]) for k in num)
        print(f"recheck {c} {clip}: {len(num)} numbers, max |again - kept| {d:.3g}; SD {m['SD']:.4f} / {o['SD']:.4f}")
PY
  ) &
  bash tools/gpu_wan.sh prepare $O 4; stamp "5B prepare"
  wait; stamp "grow, judge on the CPUs, beside prepare"
  bash tools/gpu_wan.sh interrupt $O 75 100; stamp "5B interrupted"
  bash tools/gpu_wan.sh resume $O 100; stamp "5B resumed"
  ;;
call3)
  bash tools/gpu_wan.sh lowmem $O 75; stamp "24 GB config"
  JUDGE_DEVICE=cpu WORKERS=12 bash tools/gpu_lite.sh grow $O 380 --main shipped --only "${ROWS[@]}" "${MORE[@]}" \
    > $O/grow.log 2>&1 &
  bash tools/gpu_wan.sh sample $O 30; stamp "5B sample + eval"
  wait; stamp "grow beside the 5B sampling"
  ;;
esac
tail -n 2 $O/*.log 2>/dev/null | tail -n 40 > $O/log_tails.txt || true
# at most 8 files come back from a call: everything in one archive, the summary beside it
(cd $O && tar czf /tmp/bundle.tgz . && find . -type f ! -name calls.txt -delete && mv /tmp/bundle.tgz bundle.tgz)

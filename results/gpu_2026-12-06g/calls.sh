#!/usr/bin/env bash
# The twenty-fifth session's lease (2026-12-06g), from the repository root, each call <= 600 s:
#   1. carry [".site"]:  CALL_S=580 bash results/gpu_2026-12-06g/calls.sh val $OUT   (rooms, the validation rows)
#   2. carry [".site"]:  CALL_S=580 bash results/gpu_2026-12-06g/calls.sh test $OUT  (the rest of them, the rule,
#                        then the test rows of the adopted settings, if any; again until the test rows are whole)
# The shipped model (data/v4s-lite, the 6.1M mixed_m_warm export) sampled with three other solver settings beside
# its defaults (UniPC, 20 steps, shift 3) on the 200 further validation rooms; the rule in choose_solver.py (written
# before the lease, README.md) picks one or none; only an adopted one meets the test rooms, against the defaults
# rerun in the same call on the same device.
set -uo pipefail
CALL=${1:?val | test}; O=${2:?out dir}
SHIPPED=af4ce05a65c2b457decd8b5d7cc04b0a19f2f71a774bb4c58d6660afe8f397cd
if ! echo "$SHIPPED  data/v4s-lite/diffusion_pytorch_model.safetensors" | sha256sum -c --status; then
  echo "data/v4s-lite does not hold the shipped 6.1M weights"; exit 2
fi
if [ ! -d /tmp/site/diffusers ] && [ -f .site/site.tar.xz ]; then mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site; fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
ulimit -n 65536 2>/dev/null || ulimit -n $(ulimit -Hn)
CALL_S=${CALL_S:-580}; D=results/gpu_2026-12-06g
V4S="python3 -m v4s_lite.cli"
DEV=${DEVICE:-cuda}; NV=${NV:-50}; NT=${NT:-25}; ALL=$((4*NV))  # DEVICE=cpu NV=1 NT=1: a dry run on a CPU
t0=$(date +%s); stamp() { echo "[$1: $(( $(date +%s)-t0 )) s]" | tee -a $O/calls.txt; }
left() { echo $(( CALL_S - ($(date +%s)-t0) )); }
mkdir -p runs $O data
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>&1 | tee -a $O/gpu.txt
# the rooms (docs/DATA.md): validation 300,016-300,065 + k x 1,000 (k = 0..3), the 200 rooms the CPU rows of
# ../gpu_2026-12-06f used; test 400,000-400,024 + k x 1,000 (k = 0..7), the test tables' 200 id rooms
rooms() {  # rooms DIR N SEED0 K: K processes of N rooms from SEED0 + k x 1,000
  [ -f $1/.done ] && return
  rm -rf $1; for k in $(seq 0 $(($4-1))); do
    $V4S make-data --task grounding --split id --scenes $2 --seed $(($3+k*1000)) --clip-config lite --device $DEV \
      --out $1/id --no-progress --scan random > /dev/null 2>> $O/mk_errors.log & done; wait
  mkdir -p $1/ood $1/nav; touch $1/.done; echo "$1: $(ls $1/id | wc -l) rooms" | tee -a $O/calls.txt
}
rooms data/val200 $NV 300016 4; rooms data/test200 $NT 400000 8; stamp rooms
step=$(python3 -c "import json; print(json.load(open('data/v4s-lite/v4s_export.json'))['step'])")
[ -d runs/shipped/step_$(printf %06d $step) ] || { rm -rf runs/shipped; mkdir -p runs/shipped/step_$(printf %06d $step); cp -r data/v4s-lite/. runs/shipped/step_$(printf %06d $step)/; }
VAL=runs/val200_solvers.json; TEST=runs/test200_solver.json
tables() {  # tables SET OUT DEADLINE ROWS...
  local dl=$3; [ $dl -gt 20 ] || return 0
  $V4S tables --runs runs --main shipped --data data/$1 --out $2 --resume --device $DEV --workers ${WORKERS:-16} --deadline $dl \
    --only "full (joint CFG)" "${@:4}" 2>&1 | grep -v -i warn | tail -n 40 | tee -a $O/summary.txt; cp $2 $O/
}
case $CALL in
val) tables val200 $VAL $(( $(left) - 15 )) --sampling steps=40 shift=1.5 shift=6; stamp "validation rows" ;;
test)
  tables val200 $VAL $(( $(left) - 15 )) --sampling steps=40 shift=1.5 shift=6; stamp "validation rows"
  n=$(python3 -c "import json; print(min(c['summary']['n'] for c in json.load(open('$VAL'))['conditions'].values()))")
  if [ "$n" != $ALL ]; then echo "validation rows hold $n of $ALL rooms: call again"; exit 0; fi
  python3 $D/choose_solver.py $VAL $O | tee -a $O/calls.txt
  spec=$(cat $O/chosen_solver.txt)
  if [ "$spec" = none ]; then echo "the defaults stay: no test room is used" | tee -a $O/calls.txt; exit 0; fi
  tables test200 $TEST $(( $(left) - 10 )) --sampling $spec; stamp "test rows ($spec)"
  ;;
*) echo "unknown call $CALL (val | test)"; exit 2 ;;
esac

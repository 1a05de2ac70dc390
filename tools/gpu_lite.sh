#!/usr/bin/env bash
# The lite model and its tables on one GPU machine, in phases that each fit one 10-minute device call. data/lite and
# runs/ are ignored paths that live only as long as the machine, and the device tool hands a machine back 30 s
# after a call ends (results/lite_2026-12-03: two calls found a fresh machine; results/lite_2026-12-03b: three calls
# sent back to back, each within seconds of the last one's return, all found the same warm machine). So send the
# next call at once (its command written beforehand), make each phase keep what exists, and still let every call
# that might land on a fresh machine hold what it needs (install the wheels, data, train, export):
#   bash tools/gpu_lite.sh data  OUT [N_PER_PROC]     # training clips (12 + 4 processes) and the val / test sets
#                                                   # (START=scan: training walks start at a scan view, make-data
#                                                   # --start scan; EVAL_SETS: the evaluation sets, default "val test",
#                                                   # none: only the training clips;
#                                                   # val_scan / test_scan: the same rooms, walks from a scan view;
#                                                   # SCAN=canonical: every set with canonical scans, make-data --scan
#                                                   # canonical, in DATA=data/lite_canon; END=scan: training walks
#                                                   # end at the scan's best view of the target, make-data --end scan,
#                                                   # in data/lite_end; val_end: validation walks that do;
#                                                   # END=mixed: half the blocks each way, in data/lite_mixed)
#   bash tools/gpu_lite.sh bench OUT [SECONDS]        # benchmarks/train_loop.py, old vs new loop, ~SECONDS per arm
#                                                   # (random latents at the LITE shape: the speed is the data's;
#                                                   # MODES: torch.compile modes timed, default "default reduce-overhead")
#   bash tools/gpu_lite.sh calibrate OUT [CLIPS]      # the judge's calibration suite on val rooms (tools/calibrate_judge.py)
#   bash tools/gpu_lite.sh train OUT SECS RUN [RUN ...]   # train or resume runs side by side for SECS s (then SIGINT)
#                                                   # (COMPILE: a torch.compile mode; VALIDATE_EVERY: steps between
#                                                   # validation gaps; CKPT_EVERY: steps between checkpoints, 250;
#                                                   # TRAIN_SET: more --set options for every run; VALIDATE_ON: the
#                                                   # set whose first 32 id rooms the gaps use, default val)
#   bash tools/gpu_lite.sh tables OUT SET DEADLINE [v4s tables options]   # SET = val | test -> OUT/lite_tables_SET.json
#                                                   # (JUDGE_DEVICE=cpu: judge on the CPUs, generate on the GPU; on an
#                                                   # H100 with 16 workers the GPU judge is 1.8x faster, 61 against
#                                                   # 34 videos a minute: results/gpu_2026-12-06g)
#   bash tools/gpu_lite.sh evaldata OUT               # only the val and test sets (kept when their .rooms records these settings)
#   bash tools/gpu_lite.sh asrun OUT RUN [RUN ...]    # exports/RUN (carried: ignored) as runs/RUN, one checkpoint each
#   bash tools/gpu_lite.sh shipped OUT                # data/v4s-lite as runs/shipped, named by its export's step
#   bash tools/gpu_lite.sh grow OUT DEADLINE [v4s tables options]  # the test tables in runs/lite_tables_$TEST.json
#                                                   # (TEST: the test set, default test; test_scan: walks from a scan view)
#                                                   # grown with `v4s tables --resume` (TABLES_FROM: the file to start
#                                                   # from, e.g. a committed one), copied to OUT: one table over calls
#   bash tools/gpu_lite.sh choose OUT DEADLINE RUN [RUN ...]  # each run's "full (joint CFG)" on the validation set,
#                                                   # then the rule below picks one: OUT/chosen.txt (VAL: the set, default val)
#   bash tools/gpu_lite.sh gaps OUT RUN              # condition gaps of RUN's last checkpoint on 32 validation rooms
#                                                   # of each set in GAP_SETS (default val), by frame and noise level
#   bash tools/gpu_lite.sh ship OUT RUN [RUN ...]    # each RUN's weights as data/v4s-lite ships them: OUT/exports/RUN
#   bash tools/gpu_lite.sh bundle OUT                # the rest of OUT in OUT/bundle.tgz (8 files come back at most)
# Two phases that each hold everything one call needs (the machine does not outlive a call):
#   bash tools/gpu_lite.sh sweep OUT N SECS RUN [RUN ...]  # training rooms (16 x N), the latent cache, the runs side
#                                                   # by side until SECS s after the call began, each exported (ship)
#   bash tools/gpu_lite.sh judge OUT DL_VAL DL_TEST RUN [RUN ...]  # val and test rooms, the exported runs carried in
#                                                   # exports/RUN (ignored; pass `carry`), choose on val, test tables
# RUN is a folder name under runs/: lite (the 2.3M size), lite_m / lite_l (the size sweep's larger models; lite_m is the shipped size,
# model.transformer_config), lite_warm (INIT_FROM, default the 20,000-step export of results/gpu_2026-12-05d, trained on), lite_nobox,
# mixed_m_warm (the 6.1M size from the 6.1M export INIT_FROM, e.g. results/gpu_2026-12-06b/mixed_m_step013311),
# mixed_m_cool (the same warm start, its rate decaying to 0 at COOL_STEPS steps),
# mixed_m_cool_hinoise (that cool-down with higher training noise levels, logit_mean 0.8),
# lite_contiguous (the paper's ablations at the 2.3M size and recipe), mixed_m_nobox / mixed_m_contiguous (the same
# at the shipped 6.1M size, beside mixed_m: results/gpu_2026-12-06h),
# shipped (data/v4s-lite copied in as a run, so the validation choice can keep it).
# The choice rule, fixed before any run (tables.choose_run): highest validation IF(SD<0.2) of "full (joint CFG)",
# ties broken by the lower mean SD, each run at its last checkpoint; and the shipped model is replaced only when the
# pick's paired advantage over it on the validation rooms has a 95% interval above 0 (added 2026-12-04, after a
# 4-to-2 lead on 35 validation rooms reversed on the test rooms: results/gpu_2026-12-04). Give `choose` the time to
# score every validation room (64 id rooms: ~65 s per run on the H200).
# Each training line is a plain `v4s train configs/lite.yaml --set ...` command (printed into the log).
#
# Seeds (docs/DATA.md; every range disjoint, so no evaluated room is ever trained on):
#   training   grounding 0-29,999 (12 x N from k*2,500 + ROOMS_FROM), navigation 50,000-59,999 (4 x N from 50,000 +
#              k*2,500 + ROOMS_FROM), ROOMS_FROM + N <= 2,500, all moved by ROOMS_BASE (60,000, 120,000 or 180,000:
#              fresh blocks once the offsets are used up). The seeds each run saw, and the ranges no model has seen,
#              are listed in docs/DATA.md (the 2.3M model's seeds k*1,000 + 0..119 fall inside these blocks:
#              3,000-3,119 is block 1's offsets 500-619)
#   val        id 300,000+, navigation 310,000+, ood 320,000-359,999: every choice is made here
#   test       id 400,000+, navigation 410,000+, ood 500,000-599,999: only reported
set -uo pipefail
PHASE=${1:?phase}; OUT=${2:?out dir}; shift 2
export PYTHONUNBUFFERED=1
ulimit -n 65536 2>/dev/null || ulimit -n $(ulimit -Hn)  # the encoding workers pass clips through file descriptors
V4S="python3 -m v4s_lite.cli"
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu VAL_N=1 TEST_N=1 bash tools/gpu_lite.sh ...: a dry run of the phases on a CPU
JD=${JUDGE_DEVICE:+--judge-device $JUDGE_DEVICE}  # JUDGE_DEVICE=cpu: generate on the GPU, judge on the CPUs
VAL_N=${VAL_N:-16}; TEST_N=${TEST_N:-25}; WORKERS=${WORKERS:-16}  # rooms per process of the val and test sets (the seeds: docs/DATA.md)
SCAN=${SCAN:-random}  # the context scans of every set this call renders: random | canonical (make-data --scan)
mkdir -p runs $OUT
t0=$(date +%s)
mk() {  # mk TASK SPLIT N SEED DEST [make-data options]
  $V4S make-data --task $1 --split $2 --scenes $3 --seed $4 --clip-config lite --device $DEVICE --out $5 --no-progress \
    --scan $SCAN "${@:6}" > /dev/null 2>> $OUT/mk_errors.log
}
START=${START:-anywhere}  # where the training rooms' grounding walks start: anywhere | scan (make-data --start)
END=${END:-object}  # where they end: object | scan (make-data --end scan: the scan's best view of the target) |
# mixed (half the seed blocks each: a model must both find a view the context shows and follow the instruction)
case $END in object|scan|mixed) ;; *) echo "END=$END: expected object, scan or mixed"; exit 2 ;; esac
# one folder per kind of rooms, so a warm machine's clips are never taken for another kind's
DATA=${DATA:-data/lite$([ $SCAN = canonical ] && echo _canon)$([ $END = scan ] && echo _end)$([ $END = mixed ] && echo _mixed)}
mkdir -p $DATA
ROOMS_FROM=${ROOMS_FROM:-0}  # where in each process's 2,500 training seeds to start: a later session's fresh rooms
ROOMS_BASE=${ROOMS_BASE:-0}  # added to every training seed: 60000 opens 2,500 fresh offsets per process again (docs/DATA.md)
case $ROOMS_BASE in 0|60000|120000|180000) ;; *)  # grounding BASE + 0..29,999, navigation BASE + 50,000..59,999
  echo "ROOMS_BASE=$ROOMS_BASE: expected 0, 60000, 120000 or 180000 (disjoint training seeds, docs/DATA.md)"; exit 2 ;; esac
kept() {  # kept DIR MADE: true when DIR's .rooms records the settings MADE; otherwise DIR is removed, to render again
  # (a machine may keep an earlier session's folders, results/gpu_2026-12-06b; .rooms is written once every process
  # that renders DIR has ended, so a folder cut off while rendering has none)
  if [ -d $1 ] && [ "$(cat $1/.rooms 2>/dev/null)" = "$2" ]; then
    echo "$1 exists: kept ($2)" | tee -a $OUT/summary.txt; return 0; fi
  if [ -d $1 ]; then
    echo "$1 was made with other settings ($(cat $1/.rooms 2>/dev/null || echo unrecorded)): rendered again" \
      | tee -a $OUT/summary.txt
    rm -rf $1
  fi
  return 1
}
train_data() {  # train_data N: 12 x N grounding rooms, 4 x N navigation rooms
  local made="ROOMS_BASE=$ROOMS_BASE ROOMS_FROM=$ROOMS_FROM N=$1 START=$START END=$END SCAN=$SCAN"
  kept $DATA/train "$made" && return
  for k in $(seq 0 11); do
    end=$END; [ $END = mixed ] && end=$([ $((k % 2)) = 0 ] && echo scan || echo object)  # even blocks end at a scan view
    mk grounding id $1 $((ROOMS_BASE+k*2500+ROOMS_FROM)) $DATA/train --start $START --end $end &
  done
  for k in $(seq 0 3); do mk navigation id $1 $((ROOMS_BASE+50000+k*2500+ROOMS_FROM)) $DATA/train & done
  wait
  echo "$made" > $DATA/train/.rooms
  echo "training clips: $(ls $DATA/train | wc -l), $(( $(date +%s)-t0 )) s" | tee -a $OUT/summary.txt
}
# the evaluation rooms' seeds, written once: DEST [make-data options] (val_scan / test_scan pass --start scan)
val_id() { for k in 0 1 2 3; do mk grounding id $VAL_N $((300000+k*1000)) $1/id "${@:2}" & done; }
test_id_ood() {
  for k in $(seq 0 7); do mk grounding id $TEST_N $((400000+k*1000)) $1/id "${@:2}" & done
  for k in 0 1 2 3; do mk grounding ood $TEST_N $((500000+k*25000)) $1/ood "${@:2}" & done
}
eval_set_made() {  # what .rooms records: the settings the set's rooms depend on (START only val_end's walks)
  echo "SET=$1 VAL_N=$VAL_N TEST_N=$TEST_N SCAN=$SCAN$([ $1 = val_end ] && echo " START=$START")"; }
eval_data() {  # EVAL_SETS: which evaluation sets to render, default "val test";
  # val_scan / test_scan: the same rooms (same seeds) with the grounding walks starting at a scan view (--start scan)
  # a set is kept only when its .rooms records these settings (kept): one of another size, one cut off while it
  # rendered or an earlier lease's is rendered again
  # (none: no evaluation set, for a lease that renders its own, as results/gpu_2026-12-07b does)
  [ "${EVAL_SETS:-}" = none ] && { echo "EVAL_SETS=none: no evaluation set rendered" | tee -a $OUT/summary.txt; return; }
  for s in ${EVAL_SETS:-val test}; do
    kept $DATA/$s "$(eval_set_made $s)" && continue
    case $s in
      val) val_id $DATA/val
           for k in 0 1; do mk navigation id $VAL_N $((310000+k*1000)) $DATA/val/nav & done
           for k in 0 1; do mk grounding ood $VAL_N $((320000+k*20000)) $DATA/val/ood & done ;;
      test) test_id_ood $DATA/test
            for k in 0 1 2 3; do mk navigation id $TEST_N $((410000+k*1000)) $DATA/test/nav & done ;;
      val_scan) val_id $DATA/val_scan --start scan ;;
      val_end) val_id $DATA/val_end --start $START --end scan ;;  # walks that end at a scan view (END=scan runs)
      test_scan) test_id_ood $DATA/test_scan --start scan ;;
      *) echo "unknown evaluation set $s (val | test | val_scan | test_scan | val_end, or EVAL_SETS=none alone)"; exit 2 ;;
    esac
  done
  wait
  for s in ${EVAL_SETS:-val test}; do [ -f $DATA/$s/.rooms ] || eval_set_made $s > $DATA/$s/.rooms; done
  for s in ${EVAL_SETS:-val test}; do echo "$s: $(for d in $DATA/$s/*; do echo "$(ls $d | wc -l) $(basename $d)"; done | paste -sd, -)" \
    | tee -a $OUT/summary.txt; done
  echo "data: $(( $(date +%s)-t0 )) s" | tee -a $OUT/summary.txt
}
export_runs() {  # exports/RUN (carried) as runs/RUN: an export is a plain model folder, so a run with one checkpoint,
  # named by the step it saved (kept when runs/RUN exists)
  for r in "$@"; do
    [ -d runs/$r ] && continue
    step=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" exports/$r/v4s_export.json)
    mkdir -p runs/$r/step_$(printf %06d $step) && cp -r exports/$r/. runs/$r/step_$(printf %06d $step)/
  done
}
shipped_run() {  # data/v4s-lite as a run folder, so the tables and the validation choice can use it by name; the
  # folder is named by the step its v4s_export.json records (the 2.3M model shipped before 2026-12-06 had none: 3501)
  local step=$(python3 -c "import json; print(json.load(open('data/v4s-lite/v4s_export.json'))['step'])" 2>/dev/null || echo 3501)
  local dir=runs/shipped/step_$(printf %06d $step)
  [ -d $dir ] && return
  rm -rf runs/shipped  # a machine that kept an earlier session's runs/shipped holds another model
  mkdir -p $dir && cp -r data/v4s-lite/. $dir/
}
case $PHASE in
sweep)
  N=${1:?rooms per process}; SECS=${2:?seconds from the start of the call}; shift 2
  export OMP_NUM_THREADS=1
  train_data $N
  $V4S train configs/lite.yaml --encode-only --set data_root=$DATA/train --set progress=false \
    --set num_workers=15 > $OUT/enc_main.log 2>&1
  echo "encoded: $(( $(date +%s)-t0 )) s" | tee -a $OUT/summary.txt
  left=$(( SECS - ($(date +%s)-t0) - 20 * $# ))  # ~20 s per export after training
  # (the val and test sets are rendered by `judge`: rendered beside the runs, they slowed training 2.7x for as long
  # as they took, results/lite_2026-12-03b)
  bash $0 train $OUT $left "$@"
  bash $0 ship $OUT "$@"
  ;;
judge)
  DV=${1:?deadline for the choice}; DT=${2:?deadline for the test tables}; shift 2
  export OMP_NUM_THREADS=1
  eval_data
  export_runs "$@"
  bash $0 choose $OUT $DV shipped "$@"
  best=$(cat $OUT/chosen.txt)
  bash $0 tables $OUT test $DT --main $best --only "full (joint CFG)" "guidance text" "guidance none" \
    "first frame only (context dropped)" "ground truth through the codec" "OOD scenes" "context 2 chunks"
  ;;
data)
  N=${1:-250}
  export OMP_NUM_THREADS=1
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee $OUT/gpu.txt
  train_data $N
  eval_data
  # encode once per data setting (lite and lite_m share one)
  # (the ablation runs' caches only with ABLATIONS: the size sweep needs the main one alone; ABLATIONS=1: both
  # ablations' caches, ABLATIONS=nobox / contig: that one's)
  enc="$V4S train configs/lite.yaml --encode-only --set data_root=$DATA/train --set progress=false"
  case ${ABLATIONS:-0} in
    0) abl="" ;; 1) abl="contig nobox" ;; nobox|contig) abl=$ABLATIONS ;;
    *) echo "ABLATIONS=${ABLATIONS}: expected 0, 1, nobox or contig"; exit 2 ;;
  esac
  # MAIN_CACHE=0: only the ablations' caches (an ablation trained alone beside a run trained in an earlier lease)
  case ${MAIN_CACHE:-1}${abl:+,abl} in 1|1,abl|0,abl) ;;
    *) echo "MAIN_CACHE=${MAIN_CACHE:-1} ABLATIONS=${ABLATIONS:-0}: no cache to encode (MAIN_CACHE is 1 or 0, 0 only with ABLATIONS)"
       exit 2 ;; esac
  w=$(( 15 / (${MAIN_CACHE:-1} + $(echo $abl | wc -w)) ))  # the 15 encoding workers shared between the caches
  [ ${MAIN_CACHE:-1} = 1 ] && { $enc --set num_workers=$w > $OUT/enc_main.log 2>&1 & }
  for a in $abl; do
    [ $a = contig ] && set_=sampling=contiguous || set_=box_frames=false
    $enc --set num_workers=$w --set $set_ > $OUT/enc_$a.log 2>&1 &
  done
  wait
  tail -n 1 $OUT/enc_*.log | tee -a $OUT/summary.txt
  echo "encoded: $(( $(date +%s)-t0 )) s" | tee -a $OUT/summary.txt
  ;;
evaldata)
  export OMP_NUM_THREADS=1
  eval_data
  ;;
asrun)  # asrun OUT RUN [RUN ...]: carried exports as run folders, for the tables (export_runs)
  export_runs "$@"
  ;;
shipped)  # shipped OUT: data/v4s-lite as runs/shipped (shipped_run), for a tables call made outside this script
  shipped_run
  ;;
grow)
  DL=${1:?deadline}; shift
  export OMP_NUM_THREADS=1
  shipped_run
  T=runs/lite_tables_${TEST:-test}${DATA#data/lite}.json  # TEST=test_scan: the scan-start test rooms; _canon: SCAN=canonical
  [ -f $T ] || [ -z "${TABLES_FROM:-}" ] || { cp $TABLES_FROM $T && chmod u+w $T; }
  $V4S tables --runs runs --data $DATA/${TEST:-test} --out $T --resume --device $DEVICE --workers $WORKERS --deadline $DL \
      $JD "$@" 2>&1 | grep -v -i warn | tail -n 60 | tee -a $OUT/summary.txt
  cp $T $OUT/
  ;;
bench)
  python3 -u benchmarks/train_loop.py --random 2048 --seconds ${1:-25} --compile-modes ${MODES:-default reduce-overhead} \
    2>&1 | grep --line-buffered -v -i warn | tee $OUT/bench_train_loop.txt
  ;;
calibrate)
  export OMP_NUM_THREADS=1
  python3 tools/calibrate_judge.py --data $DATA/val/id --max-clips ${1:-32} --workers $WORKERS --device $DEVICE \
    --out $OUT/calibration_val.json 2>&1 | grep -v -i warn | tail -n 30 | tee -a $OUT/summary.txt
  ;;
train)
  SECS=${1:?seconds}; shift
  common="--set data_root=$DATA/train --set progress=false --set checkpoint_every=${CKPT_EVERY:-250} --set batch_workers=0"
  [ -n "${COMPILE:-}" ] && common="$common --set compile=$COMPILE"  # a torch.compile mode (bench picks the faster)
  common="$common ${TRAIN_SET:-}"  # more --set options for every run (a CPU dry run: TRAIN_SET="--set batch_size=4")
  if [ "${VALIDATE_EVERY:-0}" -gt 0 ]; then  # validation videos and condition gaps while training, on the first 32
    # validation rooms (seeds 300,000-300,015 and 301,000-301,015: those tools/condition_gaps.py --max-clips 32 reads)
    clips=$(ls -d $DATA/${VALIDATE_ON:-val}/id/grounding_* | sort | head -n 32 | paste -sd, -)  # VALIDATE_ON=val_scan
    common="$common --set validate_every=$VALIDATE_EVERY --set validation_clips=[$clips]"
  fi
  for r in "$@"; do
    case $r in
      lite|scan_lite|canon_lite|end_lite|mixed_lite) extra="" ;;  # scan_*, canon_*, end_*, mixed_*: names for runs
        # on START=scan / SCAN=canonical / END=scan / END=mixed rooms
      lite_m|mixed_m) extra="--set model=lite_m" ;;  # mixed_m: the 6.1M size on END=mixed rooms
      mixed_m_warm) extra="--set model=lite_m --set init_from=${INIT_FROM:?mixed_m_warm: set INIT_FROM to a 6.1M export}" ;;
                 # the 6.1M size warm-started from an export (results/gpu_2026-12-06b: its 13,311 steps, trained on)
      mixed_m_cool) extra="--set model=lite_m --set init_from=${INIT_FROM:?mixed_m_cool: set INIT_FROM to a 6.1M export}"
                    extra="$extra --set lr_schedule=linear --set steps=${COOL_STEPS:?mixed_m_cool: set COOL_STEPS}" ;;
                 # a cool-down: the 6.1M warm start with the rate decaying linearly to 0 at COOL_STEPS (--resume keeps
                 # the curve; results/gpu_2026-12-06f)
      mixed_m_cool_hinoise) extra="--set model=lite_m --set init_from=${INIT_FROM:?mixed_m_cool_hinoise: set INIT_FROM to a 6.1M export}"
                    extra="$extra --set lr_schedule=linear --set steps=${COOL_STEPS:?mixed_m_cool_hinoise: set COOL_STEPS}"
                    extra="$extra --set logit_mean=0.8" ;;
                 # the same cool-down with training noise levels drawn higher (logit-normal mean 0.8, not 0: with
                 # shift 3, sigma > 0.9 in 38% of the draws, not 14%), where a video's camera path is decided
                 # (results/gpu_2026-12-07b: beside mixed_m_cool, the same rooms and steps)
      lite_l) extra="--set model=lite_l --set lr=0.0006" ;;  # 2x the width: a lower rate (a choice, not measured)
      lite_warm|scan_warm|canon_warm|end_warm|mixed_warm) extra="--set init_from=${INIT_FROM:-results/gpu_2026-12-05d/mixed_warm_step020000}" ;;  # a warm start:
                 # an exported run (bf16 weights, loaded in float32) trained on, e.g. on fresh rooms (ROOMS_FROM)
      lite_contiguous) extra="--set sampling=contiguous" ;;
      lite_nobox|end_lite_nobox) extra="--set box_frames=false" ;;  # RUN_nobox ablates RUN (v4s tables --ablated RUN)
      mixed_m_nobox) extra="--set model=lite_m --set box_frames=false" ;;  # the shipped size's box-frames ablation
                 # (results/gpu_2026-12-06h: beside mixed_m, the first 13,311 steps of the shipped model)
      mixed_m_contiguous) extra="--set model=lite_m --set sampling=contiguous" ;;  # its context ablation (the same)
      *) echo "unknown run $r"; exit 2 ;;
    esac
    resume=""; ls -d runs/$r/step_* > /dev/null 2>&1 && resume="--resume"
    cmd="$V4S train configs/lite.yaml $common --set out_dir=runs/$r $extra $resume"
    echo "$cmd" | tee -a $OUT/train_$r.log
    OMP_NUM_THREADS=2 timeout -s INT $SECS $cmd >> $OUT/train_$r.log 2>&1 &
  done
  wait
  for r in "$@"; do
    last=$(ls -d runs/$r/step_* | sort | tail -n 1)
    echo "$r: $last, last log: $(tail -n 1 runs/$r/loss.jsonl)" | tee -a $OUT/summary.txt
  done
  echo "train: $(( $(date +%s)-t0 )) s wall for $*" | tee -a $OUT/summary.txt
  ;;
gaps)  # does the model listen? the loss with another room's context / instruction, on validation rooms
  last=$(ls -d runs/$1/step_* | sort | tail -n 1)
  OMP_NUM_THREADS=8 python3 tools/condition_gaps.py $last --data $(for s in ${GAP_SETS:-val}; do echo $DATA/$s/id; done) \
      --max-clips 32 --device $DEVICE --by-frame --by-sigma 0.7 0.95 1.0 2>&1 \
      | grep "^|" | sed "s#^#$1 #" | tee -a $OUT/summary.txt
  ;;
choose)
  DL=${1:?deadline per run}; shift
  export OMP_NUM_THREADS=1
  shipped_run
  # one tables call for every run: tasks go clip by clip, so a deadline cuts every run at the same rooms
  $V4S tables --runs runs --main $1 --also "$@" --only "full: $1" --data $DATA/${VAL:-val} --out $OUT/lite_tables_val.json \
    --device $DEVICE --workers $WORKERS --deadline $DL $JD 2>&1 | grep -v -i warn | tail -n 40 | tee -a $OUT/summary.txt
  python3 - "$OUT" "$@" <<'PY' | tee -a $OUT/summary.txt
import json, sys
from v4s_lite.tables import choose_run
out, runs = sys.argv[1], sys.argv[2:]
res = json.load(open(f"{out}/lite_tables_val.json"))
c = choose_run(res, runs, incumbent="shipped" if "shipped" in runs else None)
for r, m, sd, n in c["rows"]:
    print(f"val {r}: IF@0.2 {m:.3f} SD {sd:.3f} n={n}")
print("runs with no scored room (cannot be chosen):", [r for r in runs if r not in [t[0] for t in c["rows"]]])
open(f"{out}/chosen.txt", "w").write(c["chosen"] + "\n")
print("chosen on validation:", c["reason"])
PY
  ;;
tables)
  SET=${1:?val or test}; DL=${2:?deadline}; shift 2
  export OMP_NUM_THREADS=1
  $V4S tables --runs runs --data $DATA/$SET --out $OUT/lite_tables_$SET.json --device $DEVICE --workers $WORKERS \
      --deadline $DL $JD "$@" 2>&1 | grep -v -i warn | tail -n 60 | tee -a $OUT/summary.txt
  ;;
ship)  # each RUN's last checkpoint's EMA weights as data/v4s-lite ships them (bf16, shards of <= 15 MB: what comes
       # back from a device call is at most 8 files of 16 MiB), with its loss log and config: OUT/exports/RUN
  for r in "$@"; do
    $V4S export runs/$r --out $OUT/exports/$r --dtype bf16 --max-shard-size 15MB | tee -a $OUT/summary.txt
    cp runs/$r/loss.jsonl $OUT/exports/$r/ && cp runs/$r/config.yaml $OUT/exports/$r/train_config.yaml
  done
  ;;
bundle)  # everything under OUT but the weight shards in one archive: at most 8 files come back from a call
  (cd $OUT && tar czf /tmp/bundle.tgz --exclude='*.safetensors' --exclude=bundle.tgz . && \
   find . -type f ! -name '*.safetensors' -delete && mv /tmp/bundle.tgz bundle.tgz)  # (written inside OUT, tar saw
   # OUT change as it read it, failed, and nothing was deleted: more than 8 files, none came back)
  exit 0
  ;;
pack)  # the runs' last checkpoints and logs, small enough to come back
  for r in "$@"; do
    last=$(ls -d runs/$r/step_* | sort | tail -n 1)
    [ -f $last/transformer_ema/diffusion_pytorch_model.safetensors ] || continue
    tar czf $OUT/$r.tgz runs/$r/config.yaml runs/$r/loss.jsonl $last/trainer_state.json $last/transformer_ema
  done
  ;;
esac
tail -n 3 $OUT/*.log 2>/dev/null | tail -n 60 > $OUT/log_tails.txt || true  # no logs is not a failure

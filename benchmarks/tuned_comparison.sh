#!/usr/bin/env bash
# RESULTS.md's tuned comparison on DIGINETICA: tunes each method that declares a search space with
# the same budget (8 trials, the first 4 at random, then TPE; objective: validation Recall@20 of
# cycles 2-3, seed 0), then runs all 13 methods at the tuned values over the first 4 cycles with
# seeds 0, 1 and 2, and writes the table.
#
#   bash benchmarks/tuned_comparison.sh [forward|reverse]
#
# Everything resumes: run the same command again after a kill. Two processes may run it at once
# (the second with `reverse`, so the two start on different studies; they share a study once they
# meet, and the table's runs); each uses one TensorFlow thread, which on 2 cores is faster than
# one process with both. The studies' journals, the tuned file with each study's trials, and each
# finished run's record are a few kB and go under $RECORDS_DIR (committed), so a study or the
# table continues on a machine that has none of the run folders: only trials and cycles in flight
# are lost (a killed trial is failed after the grace period and retried with its values).
#
# DATA_DIR (../shared/data), RESULTS_DIR (results/tuned-comparison: run folders, checkpoints) and
# RECORDS_DIR (benchmarks/records) may be set in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
order=${1:-forward}
DATA_DIR=${DATA_DIR:-../shared/data}
RESULTS_DIR=${RESULTS_DIR:-results/tuned-comparison}
RECORDS_DIR=${RECORDS_DIR:-benchmarks/records}
TUNED_DIR=$RECORDS_DIR/tuned
TUNED=$TUNED_DIR/DIGINETICA.json
TUNED_METHODS=(mas ewc lwf derpp ader er sacaisr si)
ALL_METHODS=ader,er_herding,er_reservoir,derpp,lwf,agem,mas,ewc,si,sacaisr,dropout,finetune,joint
case $order in
  forward) ;;
  reverse) mapfile -t TUNED_METHODS < <(printf '%s\n' "${TUNED_METHODS[@]}" | tac) ;;
  *) echo "tuned_comparison.sh: unknown order '$order' (forward or reverse)" >&2; exit 2 ;;
esac
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 TF_CPP_MIN_LOG_LEVEL=2
mkdir -p "$TUNED_DIR"
for method in "${TUNED_METHODS[@]}"; do
  python -m ader_tf.tune --method="$method" --dataset=DIGINETICA --data_dir="$DATA_DIR" \
    --trials=8 --startup_trials=4 --results_dir="$RESULTS_DIR" \
    --storage="journal:$TUNED_DIR/DIGINETICA-$method.journal" --tuned_out="$TUNED" --noprogress
done
python benchmarks/reproduce.py --dataset=DIGINETICA --data_dir="$DATA_DIR" --cycles=4 \
  --seeds=0,1,2 --methods="$ALL_METHODS" --tuned="$TUNED" --share_first_cycle \
  --results_dir="$RESULTS_DIR" --records_dir="$RECORDS_DIR" --section=diginetica-tuned

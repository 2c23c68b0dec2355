#!/usr/bin/env bash
# The rest of the paper's table (5 methods x 2 datasets x 16 cycles) on a GPU machine.
#
#   bash benchmarks/gpu_table.sh [BUDGET_SECONDS]
#
# Starts no new run after BUDGET_SECONDS (default 500) and stops the one in progress then;
# every run resumes from its last finished cycle when the script is started again on the same
# machine. Writes the tables into RESULTS.md and copies the small result files (metrics, logs,
# timings; no checkpoints) and RESULTS.md to $OUT when set (the device tool's output folder).
set -uo pipefail
BUDGET=${1:-500}
DATA=${ADER_DATA_DIR:-../shared/data}
RUNS=results/reproduce-gpu
SCRATCH=$(mktemp)  # per-run sections; the tables go into RESULTS.md at the end
cd "$(dirname "$0")/.."
python -m pip install -q -e . >/dev/null
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "warning: no GPU seen"
end=$((SECONDS + BUDGET))
for dataset in DIGINETICA YOOCHOOSE; do
  for method in ader joint dropout ewc finetune; do
    left=$((end - SECONDS))
    if [ "$left" -le 20 ]; then break 2; fi
    timeout "$left" python benchmarks/reproduce.py --dataset="$dataset" --methods="$method" \
      --cycles=16 --data_dir="$DATA" --results_dir="$RUNS" --section=run --results_md="$SCRATCH" \
      || echo "stopped: $dataset $method (budget or error; run again to resume)"
  done
done
left=$((end - SECONDS))
if [ "$left" -gt 20 ]; then  # the backbone x method table, first 4 cycles
  timeout "$left" python benchmarks/reproduce.py --dataset=DIGINETICA \
    --models=sasrec,gru4rec,stamp,stmp,sknn,vsknn --methods=ader,finetune,joint,er_random \
    --cycles=4 --data_dir="$DATA" --results_dir="$RUNS" --section=run --results_md="$SCRATCH" \
    || echo "stopped: backbone table (budget or error; run again to resume)"
fi
for dataset in DIGINETICA YOOCHOOSE; do
  python benchmarks/reproduce.py --norun --dataset="$dataset" \
    --methods=ader,joint,dropout,ewc,finetune --cycles=16 --data_dir="$DATA" \
    --results_dir="$RUNS" --section="gpu-$dataset-table" >/dev/null || true
done
python benchmarks/reproduce.py --norun --dataset=DIGINETICA \
  --models=sasrec,gru4rec,stamp,stmp,sknn,vsknn --methods=ader,finetune,joint,er_random \
  --cycles=4 --data_dir="$DATA" --results_dir="$RUNS" --section=gpu-diginetica-backbones \
  >/dev/null || true
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  cp RESULTS.md "$OUT/"
  cp -r figures "$OUT/" 2>/dev/null || true
  (cd "$RUNS" 2>/dev/null && find . \( -name '*.csv' -o -name '*.json' -o -name '*.txt' \) \
    -not -path '*/checkpoints/*' -print0 | tar --null -cf "$OUT/runs.tar" -T -)
fi

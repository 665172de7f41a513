#!/usr/bin/env bash
# On one CUDA machine: the time-budgeted pose recipe, then the training benchmark's CUDA rows, logs to $OUT.
#
#   OUT=/tmp/out MODELS=path/to/lmo/models MINUTES=4 bash bench/gpu_recipe.sh
#
# Without MODELS (or when it is not a folder) the recipe renders the procedural objects. Expect MINUTES + about
# 3 minutes: rendering and cutting ~0.5 min, start-up and the budget measurement, scoring, then ~2 min of benchmarks.
# Datasets and runs go to $WORK (not $OUT: they are large); $OUT gets the printed tables and the run's small files.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PY:-python3}
OUT=${OUT:-results/gpu}
WORK=${WORK:-/tmp/bopnp-gpu}
MINUTES=${MINUTES:-4}
MODELS=${MODELS:-datasets/lmo/models}
WORKERS=${WORKERS:-12}
mkdir -p "$OUT" "$WORK"
models=()
if [ -d "$MODELS" ]; then models=(--models "$MODELS"); else echo "no models folder at $MODELS: procedural objects"; fi
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'needs a CUDA device')"
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.txt" 2>&1 || true

# 1. the recipe: synth -> prepare -> train (L_trans then e2e) for MINUTES -> held-out renders with GT boxes
/usr/bin/time -v $PY -m bopnp recipe "${models[@]}" --minutes "$MINUTES" --device cuda --workers "$WORKERS" \
    --bop-path "$WORK/datasets" --out "$WORK/recipe" --no-progress 2>&1 | tee "$OUT/recipe.txt"
cp "$WORK/recipe/recipe.json" "$WORK/recipe/pose/config.json" "$WORK/recipe/pose/log.jsonl" "$OUT/" 2>/dev/null || true

# 2. compute rows at a large batch (eager, channels-last, bf16), then torch.compile at 64 px (its compile time is
#    the wall time of that command beyond the others)
timeout 120 $PY bench/train.py --device cuda --sizes 64 128 --widths 16 32 --batch 512 --steps 10 \
    2>&1 | tee "$OUT/bench_compute.txt" || echo "compute rows stopped (timeout)" | tee -a "$OUT/bench_compute.txt"
/usr/bin/time -f "compile rows: %e s wall" timeout 180 $PY bench/train.py --device cuda --sizes 64 --widths 16 \
    --batch 512 --steps 10 --compile 2>&1 | tee -a "$OUT/bench_compute.txt" || true

# 3. end-to-end rows: real `bopnp train` processes on the recipe's crops, per batch size (L_trans, then e2e)
timeout 300 $PY bench/train.py --device cuda --no-compute --runs "$WORK/datasets" lmo-synth --run-batches 32 256 1024 \
    --run-steps 200 --workers "$WORKERS" --run-args "--width 16 --augment light --lr-scale sqrt --warmup 0.05" \
    2>&1 | tee "$OUT/bench_e2e.txt" || true
timeout 180 $PY bench/train.py --device cuda --no-compute --runs "$WORK/datasets" lmo-synth --run-batches 256 \
    --run-steps 100 --workers "$WORKERS" --run-args "--width 16 --augment light --e2e --e2e-steps 100" \
    2>&1 | tee -a "$OUT/bench_e2e.txt" || true

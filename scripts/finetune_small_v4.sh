#!/usr/bin/env bash
# The CPU fine-tuning run that made vidrestore-small-v4 from vidrestore-small-v3.
#
# Differences from scripts/finetune_small_v3.sh: starts from the v3 weights, adds the 1/2-scale flow
# refinement stage (ModelConfig.half_flow, zero-initialised, so step 0 reproduces v3 up to resampling
# order), and supervises every flow stage on synthetic batches with the scenes' exact flows
# (--flow-weight 0.01, per full-resolution pixel of error). v3 loses to classical DIS flow on real
# footage because its flows fall short of the true motion (2-10x too small on moving objects, measured
# against DIS), which the image loss alone lets it get away with by blending. Data, hold-out, image
# losses and learning rate are v3's.
#
# Resumable like train_run.sh: run it again (same STEPS) until the log says "finished".
#   scripts/finetune_small_v4.sh 62
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES="${1:-10}"
shift || true
RUN="${RUN:-runs/small-v4-cpu}"
STEPS="${STEPS:-2200}"
. scripts/cpu_train_env.sh

exec "$PY" -m vidrestore train \
    --out "$RUN" --resume --init vidrestore-small-v3 \
    --size small --steps "$STEPS" --minutes "$MINUTES" \
    --batch 8 --crop 128 --lr 2e-4 --warmup 100 \
    --textures "$DATA/reds_000" --textures "$DATA/clips" \
    --clips "$DATA/clips" --clip-scale 0.5 --holdout-frames 96 --mix synthetic=0.6,clips=0.4 \
    --key-weight 3 --clip-key-weight 0 --flow-weight 0.01 --subframes 8 --max-speed 32 \
    --val-every 500 --val-count 16 --ckpt-every 100 --log-every 25 \
    --device cpu --precision fp32 --threads "$THREADS" --seed 4 \
    "$@"

#!/usr/bin/env bash
# The CPU fine-tuning run that makes vidrestore-small-v5 from vidrestore-small-v3.
#
# Differences from scripts/finetune_small_v3.sh: starts from the v3 weights and switches on the coarse
# matching level (ModelConfig.coarse_levels = 1: fixed-descriptor matching at 1/16 with cost aggregation
# and a confidence gate, no parameters), which centres the 1/8 inter-frame attention's window on large
# motion. v3's attention cannot follow a shift of 20 px or more (measured on a translated real frame:
# 30 px -> 0). Every flow stage is also supervised on synthetic batches with the scenes' exact flows
# (--flow-weight 0.01, per full-resolution pixel of error). Data, hold-out, image losses and learning
# rate are v3's.
#
# Resumable like train_run.sh: run it again (same STEPS) until the log says "finished".
#   scripts/finetune_small_v5.sh 80
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES="${1:-10}"
shift || true
RUN="${RUN:-runs/small-v5-cpu}"
STEPS="${STEPS:-2000}"
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

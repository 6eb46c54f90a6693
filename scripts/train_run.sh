#!/usr/bin/env bash
# The shipped CPU training run: small model, synthetic scenes textured with real frames
# (REDS + the sample clips) plus interpolation samples from the sharp clips.
#
# It is resumable: every invocation continues runs/<name> from its checkpoint, trains for at most
# MINUTES (default 10), then checkpoints and exports runs/<name>/final.safetensors. Run it again
# (same STEPS!) until the log says "finished". STEPS fixes the cosine schedule of the whole run.
#
#   scripts/train_run.sh 10              # one 10-minute chunk
#   STEPS=6000 scripts/train_run.sh 8    # other total length (keep it the same for all chunks)
#   extra options are passed on:  scripts/train_run.sh 10 --lr 3e-4
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES="${1:-10}"
shift || true
RUN="${RUN:-runs/small-cpu}"
STEPS="${STEPS:-8000}"
. scripts/cpu_train_env.sh

exec "$PY" -m vidrestore train \
    --out "$RUN" --resume \
    --size small --steps "$STEPS" --minutes "$MINUTES" \
    --batch 8 --crop 96 --lr 4e-4 --warmup 300 \
    --textures "$DATA/reds_000" --textures "$DATA/clips" \
    --clips "$DATA/clips" --mix synthetic=0.8,clips=0.2 \
    --subframes 8 --max-speed 24 \
    --val-every 500 --val-count 16 --ckpt-every 100 --log-every 25 \
    --device cpu --precision fp32 --threads "$THREADS" --seed 0 \
    "$@"

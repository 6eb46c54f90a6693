#!/usr/bin/env bash
# The CPU fine-tuning run that made vidrestore-small-v2 from vidrestore-small-v1.
#
# Differences from scripts/train_run.sh (v1): starts from the v1 weights (--init), real clips decoded
# at half size (640x360, the scale `vidrestore eval` scores them at) and weighted up, larger crops,
# the key (deblurred) frame weighted 3x in the loss, and the first 96 frames of every video held out
# (scripts/release_eval.sh scores frames 0-90 of the same clips).
#
# Resumable like train_run.sh: run it again (same STEPS) until the log says "finished".
#   scripts/finetune_small_v2.sh 60
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES="${1:-10}"
shift || true
RUN="${RUN:-runs/small-v2-cpu}"
STEPS="${STEPS:-2600}"
. scripts/cpu_train_env.sh

exec "$PY" -m vidrestore train \
    --out "$RUN" --resume --init vidrestore-small-v1 \
    --size small --steps "$STEPS" --minutes "$MINUTES" \
    --batch 8 --crop 128 --lr 2e-4 --warmup 100 \
    --textures "$DATA/reds_000" --textures "$DATA/clips" \
    --clips "$DATA/clips" --clip-scale 0.5 --holdout-frames 96 --mix synthetic=0.6,clips=0.4 \
    --key-weight 3 --subframes 8 --max-speed 32 \
    --val-every 500 --val-count 16 --ckpt-every 100 --log-every 25 \
    --device cpu --precision fp32 --threads "$THREADS" --seed 1 \
    "$@"

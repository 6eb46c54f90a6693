#!/usr/bin/env bash
# The CPU fine-tuning run that made vidrestore-small-v3 from vidrestore-small-v2.
#
# Differences from scripts/finetune_small_v2.sh: starts from the v2 weights and adds the 1/4-scale
# flow refinement stage (ModelConfig.fine_flow, zero-initialised so step 0 reproduces v2), and drops
# the key-frame loss from clip batches (--clip-key-weight 0: a clip's key input is its own target, so
# that term only anchored the key branch to the identity; synthetic batches, 15% of them sharp, still
# teach it to leave sharp frames alone). Data, hold-out and learning rate are v2's.
#
# Resumable like train_run.sh: run it again (same STEPS) until the log says "finished".
#   scripts/finetune_small_v3.sh 68
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES="${1:-10}"
shift || true
RUN="${RUN:-runs/small-v3-cpu}"
STEPS="${STEPS:-3500}"
. scripts/cpu_train_env.sh

exec "$PY" -m vidrestore train \
    --out "$RUN" --resume --init vidrestore-small-v2 \
    --size small --steps "$STEPS" --minutes "$MINUTES" \
    --batch 8 --crop 128 --lr 2e-4 --warmup 100 \
    --textures "$DATA/reds_000" --textures "$DATA/clips" \
    --clips "$DATA/clips" --clip-scale 0.5 --holdout-frames 96 --mix synthetic=0.6,clips=0.4 \
    --key-weight 3 --clip-key-weight 0 --subframes 8 --max-speed 32 \
    --val-every 500 --val-count 16 --ckpt-every 100 --log-every 25 \
    --device cpu --precision fp32 --threads "$THREADS" --seed 1 \
    "$@"

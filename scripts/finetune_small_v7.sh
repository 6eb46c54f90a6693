#!/usr/bin/env bash
# The CPU fine-tuning run that makes the vidrestore-small-v7 candidate from vidrestore-small-v6:
# flow supervision on real footage from a classical teacher.
#
# Differences from scripts/finetune_small_v6.sh: --clip-flow-weight 0.03 adds a flow term to the clip
# batches, against DIS flows from each sample's true in-between frame to both inputs (photometrically
# checked; vidrestore.train.teacher). Measured before this run: on the real evaluation clips v6's flows
# catch only 40-50% of the motion where things move, and v6's own blend and refiner fed with DIS flows
# score at DIS's level, so the flows are what holds the real-footage figure back. Half of the batches
# are clips (v6: 40%); the rest as v6, from v6's weights.
#
# Resumable like train_run.sh: run it again (same STEPS) until the log says "finished".
#   scripts/finetune_small_v7.sh 50
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES="${1:-10}"
shift || true
RUN="${RUN:-runs/small-v7-cpu}"
STEPS="${STEPS:-1800}"
. scripts/cpu_train_env.sh

exec "$PY" -m vidrestore train \
    --out "$RUN" --resume --init vidrestore-small-v6 \
    --size small --steps "$STEPS" --minutes "$MINUTES" \
    --batch 8 --crop 160 --lr 1.5e-4 --warmup 100 \
    --textures "$DATA/reds_000" --textures "$DATA/clips" \
    --clips "$DATA/clips" --clip-scale 0.5 --holdout-frames 96 --mix synthetic=0.5,clips=0.5 \
    --key-weight 3 --clip-key-weight 0 --flow-weight 0.01 --clip-flow-weight 0.03 --subframes 8 --max-speed 32 \
    --val-every 600 --val-count 16 --ckpt-every 100 --log-every 25 \
    --device cpu --precision fp32 --threads "$THREADS" --seed 11 \
    "$@"

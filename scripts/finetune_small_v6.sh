#!/usr/bin/env bash
# The CPU fine-tuning run that makes the vidrestore-small-v6 candidate from vidrestore-small-v5.
#
# Differences from scripts/finetune_small_v5.sh: starts from the v5 weights, so the coarse matching
# level's absolute gate (coarse_match 0.65, set after v5's run) is on during training; 160 px crops
# instead of 128 (the 1/16 grid the coarse level works on is then 10x10 cells, not 8x8); a lower peak
# learning rate for a second fine-tuning stage. Data, hold-out, losses and flow supervision are v5's.
#
# Resumable like train_run.sh: run it again (same STEPS) until the log says "finished".
#   scripts/finetune_small_v6.sh 48
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES="${1:-10}"
shift || true
RUN="${RUN:-runs/small-v6-cpu}"
STEPS="${STEPS:-1300}"
. scripts/cpu_train_env.sh

exec "$PY" -m vidrestore train \
    --out "$RUN" --resume --init vidrestore-small-v5 \
    --size small --steps "$STEPS" --minutes "$MINUTES" \
    --batch 8 --crop 160 --lr 1.5e-4 --warmup 100 \
    --textures "$DATA/reds_000" --textures "$DATA/clips" \
    --clips "$DATA/clips" --clip-scale 0.5 --holdout-frames 96 --mix synthetic=0.6,clips=0.4 \
    --key-weight 3 --clip-key-weight 0 --flow-weight 0.01 --subframes 8 --max-speed 32 \
    --val-every 500 --val-count 16 --ckpt-every 100 --log-every 25 \
    --device cpu --precision fp32 --threads "$THREADS" --seed 5 \
    "$@"

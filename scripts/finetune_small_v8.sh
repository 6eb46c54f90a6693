#!/usr/bin/env bash
# The CPU fine-tuning run that makes the vidrestore-small-v8 candidate from vidrestore-small-v7:
# the key-frame (deblurring) branch alone, on blur-heavy synthetic scenes.
#
# Differences from scripts/finetune_small_v7.sh: only `key_branch` is trained (--train-only), so the
# in-between frames stay exactly v7's and are not even computed (--inter-weight 0); synthetic scenes
# only, with exposures of 0.75-1 frame interval (the validation set's 7/8 inside), 5% sharp inputs (so sharp frames still come back
# unchanged) and no input noise; a higher peak learning rate for the smaller set of tensors.
# Earlier probes (v3's model card) found the default mix's deblurring signal too weak for CPU-length runs.
#
# Resumable like train_run.sh: run it again (same STEPS) until the log says "finished".
#   scripts/finetune_small_v8.sh 45
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES="${1:-10}"
shift || true
RUN="${RUN:-runs/small-v8-cpu}"
STEPS="${STEPS:-6000}"
. scripts/cpu_train_env.sh

exec "$PY" -m vidrestore train \
    --out "$RUN" --resume --init vidrestore-small-v7 \
    --size small --steps "$STEPS" --minutes "$MINUTES" \
    --train-only key_branch --inter-weight 0 --key-weight 1 \
    --batch 8 --crop 128 --lr 1e-3 --warmup 100 \
    --textures "$DATA/reds_000" --textures "$DATA/clips" --holdout-frames 96 \
    --exposure 0.75 1.0 --sharp-prob 0.05 --noise 0 --subframes 8 --max-speed 32 \
    --val-every 1000 --val-count 16 --ckpt-every 250 --log-every 100 \
    --device cpu --precision fp32 --threads "$THREADS" --seed 7 \
    "$@"

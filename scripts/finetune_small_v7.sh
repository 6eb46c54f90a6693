#!/usr/bin/env bash
# The two CPU fine-tuning runs that make vidrestore-small-v7 from vidrestore-small-v6.
#
#   scripts/finetune_small_v7.sh flows 55   # stage 1: runs/small-v7-flows-cpu (resumable)
#   scripts/finetune_small_v7.sh key 40     # stage 2: runs/small-v7-key-cpu, from stage 1's export
#
# Stage 1, flows. Against scripts/finetune_small_v6.sh: --clip-flow-weight 0.03 adds a flow term to
# the clip batches, against DIS teacher flows from each sample's true in-between frame to both inputs
# (photometrically checked; vidrestore.train.teacher). Measured before this run
# (scripts/diagnose_flows.py and a test that fed DIS flows to v6's blend and refiner): v6's flows catch
# well under half of the motion where things move, and v6's own blend and refiner fed with DIS flows
# score at DIS's level, so the flows hold the real-footage figure back. Half of the batches are clips
# (v6: 40%); the rest as v6.
#
# Stage 2, key frames. Only `key_branch` is trained (--train-only), so the in-between frames stay
# exactly stage 1's and are not even computed (--inter-weight 0); synthetic scenes only, with
# exposures of 0.75-1 frame interval (the validation set's 7/8 inside), 5% sharp inputs (so sharp
# frames still come back unchanged) and no input noise, at a higher learning rate for the smaller set
# of tensors. v3's model card has the probes that found the default mix's deblurring signal too weak
# for CPU-length runs.
#
# Each stage resumes like train_run.sh: run it again (same STEPS) until its log says "finished".
set -euo pipefail
cd "$(dirname "$0")/.."

STAGE="${1:?usage: scripts/finetune_small_v7.sh flows|key [MINUTES]}"
MINUTES="${2:-10}"
shift 2 || shift || true
FLOWS_RUN="${FLOWS_RUN:-runs/small-v7-flows-cpu}"
KEY_RUN="${KEY_RUN:-runs/small-v7-key-cpu}"
. scripts/cpu_train_env.sh
COMMON=(--size small --minutes "$MINUTES" --batch 8 --warmup 100 --textures "$DATA/reds_000" --textures "$DATA/clips"
        --holdout-frames 96 --subframes 8 --max-speed 32 --val-count 16 --device cpu --precision fp32
        --threads "$THREADS")

case "$STAGE" in
  flows)
    exec "$PY" -m vidrestore train --out "$FLOWS_RUN" --resume --init vidrestore-small-v6 \
        --steps "${STEPS:-1800}" --crop 160 --lr 1.5e-4 "${COMMON[@]}" \
        --clips "$DATA/clips" --clip-scale 0.5 --mix synthetic=0.5,clips=0.5 \
        --key-weight 3 --clip-key-weight 0 --flow-weight 0.01 --clip-flow-weight 0.03 \
        --val-every 600 --ckpt-every 100 --log-every 25 --seed 11 "$@" ;;
  key)
    exec "$PY" -m vidrestore train --out "$KEY_RUN" --resume --init "$FLOWS_RUN/final.safetensors" \
        --steps "${STEPS:-4500}" --crop 128 --lr 1e-3 "${COMMON[@]}" \
        --train-only key_branch --inter-weight 0 --key-weight 1 \
        --exposure 0.75 1.0 --sharp-prob 0.05 --noise 0 \
        --val-every 1500 --ckpt-every 250 --log-every 100 --seed 7 "$@" ;;
  *)
    echo "unknown stage $STAGE: flows or key" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# The CPU fine-tuning runs that make vidrestore-small-v8 from vidrestore-small-v7.
#
#   scripts/finetune_small_v8.sh flows0 20   # stage 0: runs/probe-v8-flows, v7 + 700 teacher-flow steps
#   scripts/finetune_small_v8.sh graft       # runs/small-v8-graft.safetensors: stage 0 with v7's key branch
#   scripts/finetune_small_v8.sh flows 45    # stage 1: runs/small-v8-flows-cpu, key branch frozen
#   scripts/finetune_small_v8.sh key 47      # stage 2: runs/small-v8-key-cpu, the key branch alone
#
# Stage 0 is the probe run after v7 (its model card): v7's flows stage recipe for 700 more steps. It
# raised the validation in-between frames (35.83 -> 35.92 dB) but let the key branch drift back toward
# the identity (key frames 37.98 -> 37.70 dB): the ordinary mix's key signal is weak.
# So v8 puts v7's key branch back (graft) and goes on with the same teacher-flow recipe with the key
# branch frozen (--train-only lists every other part): the shared encoder, attention and inter-frame
# attention still learn from the key loss, through a key branch that stays as v7 trained it.
# Stage 2 then retrains the key branch alone on top of the new features, as v7's stage 2 did.
#
# Each training stage resumes like train_run.sh: run it again (same STEPS) until its log says "finished".
set -euo pipefail
cd "$(dirname "$0")/.."

STAGE="${1:?usage: scripts/finetune_small_v8.sh flows0|graft|flows|key [MINUTES]}"
MINUTES="${2:-10}"
shift 2 || shift || true
PROBE_RUN="${PROBE_RUN:-runs/probe-v8-flows}"
GRAFT="${GRAFT:-runs/small-v8-graft.safetensors}"
FLOWS_RUN="${FLOWS_RUN:-runs/small-v8-flows-cpu}"
KEY_RUN="${KEY_RUN:-runs/small-v8-key-cpu}"
. scripts/cpu_train_env.sh

case "$STAGE" in
  flows0)
    FLOWS_RUN="$PROBE_RUN" STEPS=700 exec scripts/finetune_small_v7.sh flows "$MINUTES" --init vidrestore-small-v7 "$@" ;;
  graft)
    exec "$PY" scripts/graft_weights.py "$PROBE_RUN/final.safetensors" vidrestore-small-v7 key_branch "$GRAFT" ;;
  flows)
    FLOWS_RUN="$FLOWS_RUN" STEPS="${STEPS:-1600}" exec scripts/finetune_small_v7.sh flows "$MINUTES" --init "$GRAFT" \
        --train-only encoder --train-only ala --train-only ifa --train-only flow_head --train-only fine_flow \
        --train-only refiner --seed 12 "$@" ;;
  key)
    FLOWS_RUN="$FLOWS_RUN" KEY_RUN="$KEY_RUN" STEPS="${STEPS:-4500}" exec scripts/finetune_small_v7.sh key "$MINUTES" "$@" ;;
  *)
    echo "unknown stage $STAGE: flows0, graft, flows or key" >&2; exit 2 ;;
esac

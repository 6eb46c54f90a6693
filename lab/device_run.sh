#!/usr/bin/env bash
# Work for the lent GPU machine (the `device` tool). Run from the repository root.
#
#   lab/device_run.sh prepare          HERE, once: the PyAV wheel into .whl/, the training footage
#                                          into .devdata/ (both ignored by git, both carried)
#   lab/device_run.sh train MINUTES    THERE: continue recipes/prior-default-gpu.toml (the flow-prior
#                                          network, size default) in runs/$RUN for MINUTES (default 9);
#                                          copies the log and the weights to $OUT/
#   lab/device_run.sh bench            THERE: the GPU benchmarks of the README into $OUT/
#
# On the device:  run(command="lab/device_run.sh train 9", carry=[".whl", ".devdata"])
# Overrides (environment): RUN, DEVICE, PRECISION, DEVDATA for train, and SIZE, STEPS, LR, CACHE_MIN,
# STORE, VAL_EVERY, THREADS, each passed on as `--set name=VALUE` over the recipe;
# WEIGHTS (a trained file; else random weights of size SIZE), SIZE, HD, UHD, FRAMES, UHD_FRAMES for bench
# (tests/test_device_script.py runs both on the CPU at tiny sizes).
# The optimizer state (2x the weights) stays on the machine with the checkpoint: issue the next call
# while it is still warm (it is given back after 30 s idle).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE="${1:?usage: lab/device_run.sh prepare|train [MINUTES]|bench}"
RUN="${RUN:-runs/prior-default-gpu}"
PY="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
PRECISION="${PRECISION:-bf16}"
SIZE="${SIZE:-default}"
OUT="${OUT:-out}"
AV_VERSION="${AV_VERSION:-18.1.1}"
DEVDATA="${DEVDATA:-.devdata}"  # the carried training footage (clips/ and train/, as in ../shared/data)

setup_there() {
    if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
        export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
    fi
    # the package straight from the working tree: the bare machine has every other dependency
    export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
    export PYTHONUNBUFFERED=1
    mkdir -p "$OUT"
    "$PY" -c "import av, torch, vidrestore; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'av', av.__version__)"
}

case "$MODE" in
prepare)
    EXCLUDE="$(git rev-parse --git-path info/exclude)"
    mkdir -p "$(dirname "$EXCLUDE")"
    for d in /.whl/ /.devdata/; do grep -qxF "$d" "$EXCLUDE" 2>/dev/null || echo "$d" >> "$EXCLUDE"; done
    mkdir -p .whl .devdata
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "av==$AV_VERSION"
    DATA="${DATA:-../shared/data}"
    rm -rf .devdata/clips .devdata/train
    cp -r "$DATA/clips" .devdata/
    # the training footage that fits beside the wheel in the 64 MiB carried (without the 10-12.5 fps
    # surveillance clips and the high-speed cine)
    (cd "$DATA" && find train \( -name '*.mp4' -o -name '*.mkv' -o -name '*.webm' -o -name '*.mpg' \) \
        ! -name 'car-detection.mp4' ! -name 'one-by-one-person-detection.mp4' -print0 |
        xargs -0 -I{} cp --parents {} "$OLDPWD/.devdata/")
    du -shc .whl .devdata
    ;;
train)
    MINUTES="${2:-9}"
    setup_there
    SETS=()
    for pair in size:SIZE steps:STEPS lr:LR cache_min:CACHE_MIN store:STORE val_every:VAL_EVERY threads:THREADS; do
        var="${pair#*:}"
        if [ -n "${!var:-}" ]; then SETS+=(--set "${pair%%:*}=${!var}"); fi
    done
    "$PY" -m vidrestore train --recipe recipes/prior-default-gpu.toml --out "$RUN" --data "$DEVDATA" \
        --minutes "$MINUTES" --device "$DEVICE" --precision "$PRECISION" "${SETS[@]}" 2>&1 | tee "$OUT/train.txt"
    cp "$RUN/log.jsonl" "$RUN/final.safetensors" "$OUT/"
    ;;
bench)
    setup_there
    W=()
    [ -n "${WEIGHTS:-}" ] && W=(--weights "$WEIGHTS") || W=(--size "$SIZE")
    HD="${HD:-1280x720}"; UHD="${UHD:-3840x2160}"; FRAMES="${FRAMES:-64}"
    "$PY" -m vidrestore bench "${W[@]}" --device "$DEVICE" --precision "$PRECISION" --batch "${BATCH:-4}" \
        --resolution "$HD" --fps-x 8 --frames "$FRAMES" --json > "$OUT/bench_720p_8x.json"
    "$PY" -m vidrestore bench "${W[@]}" --device "$DEVICE" --precision "$PRECISION" --batch "${BATCH:-4}" \
        --resolution "$HD" --fps-x 2 --frames "$FRAMES" --json > "$OUT/bench_720p_2x.json"
    "$PY" -m vidrestore bench "${W[@]}" --device "$DEVICE" --precision "$PRECISION" \
        --resolution "$UHD" --fps-x 8 --frames "${UHD_FRAMES:-8}" --no-minterpolate --json > "$OUT/bench_4k_8x.json"
    ls -la "$OUT"
    ;;
*)
    echo "unknown mode $MODE: prepare, train or bench" >&2
    exit 2
    ;;
esac

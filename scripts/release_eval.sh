#!/usr/bin/env bash
# Every quality and speed figure in the README and the model card comes from this script.
# Usage: scripts/release_eval.sh OUTDIR [WEIGHTS]   (WEIGHTS: name or path; default: the bundled default)
#        PARTS=quality or PARTS=speed runs one half (the speed half wants the machine to itself; default: both);
#        PARTS=adapt runs only the checks of --adapt (about 16 minutes: 12 clips adapted for 60 s each);
#        ENSEMBLE=0 leaves out the --ensemble 4 runs of the quality half
# Writes OUTDIR/*.json. On 2 CPU cores: the quality half about 15 minutes, the speed half about 15 (10 of them the
# default size at 720p 8x, random weights, for comparison with GPU runs).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?usage: scripts/release_eval.sh OUTDIR [WEIGHTS]}"
W=()
[ -n "${2:-}" ] && W=(--weights "$2")
VR="${VIDRESTORE:-vidrestore}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
date -u +"%Y-%m-%dT%H:%MZ" > "$OUT/date.txt"
PARTS="${PARTS:-all}"
if [ "$PARTS" = adapt ]; then
# (f) --adapt on footage the network never saw: frames 0-95 of the three clips (held out of training) at 640x360;
#     each clip's own inputs adapt the network for 60 s, and base and adapted are scored in the same run. Real 2x
#     interpolation, and the inputs blurred by their own motion to about 8, 16 and 32 px (every 4th frame, so that
#     24 inputs per clip are enough to adapt on; the stride-16 checks above leave 6, too few)
"$PY" scripts/cut_clips.py --out "$OUT/clips96" --frames 96 --size 640x360 --format png > /dev/null
"$VR" eval "$OUT/clips96" "${W[@]}" --protocol interp --stride 2 --methods model,dis-flow --adapt 60 --json \
    > "$OUT/adapt_interp2.json"
for L in 8 16 32; do
    "$VR" eval "$OUT/clips96" "${W[@]}" --protocol deblur --stride 4 --exposure 3 --blur-length "$L" \
        --methods model,repeat --adapt 60 --json > "$OUT/adapt_deblur_flow${L}px.json"
done
rm -rf "$OUT/clips96"
echo "results in $OUT"
exit 0
fi
if [ "$PARTS" != speed ]; then

# (a) synthetic held-out set: joint (8x, exposure 7/8), interp (8x, sharp inputs), deblur
"$VR" eval --synthetic "${W[@]}" --json > "$OUT/synthetic_joint.json"
"$VR" eval --synthetic "${W[@]}" --protocol interp --json > "$OUT/synthetic_interp.json"
# (b) real footage: the three sample clips, 91 frames each at 640x360, every second frame dropped
"$PY" scripts/cut_clips.py --out "$OUT/clips360" --frames 91 --size 640x360 --format png > /dev/null
"$VR" eval "$OUT/clips360" "${W[@]}" --protocol interp --stride 2 --json > "$OUT/clips_interp2.json"
# (d) deblurring real content: the held-out clips blurred by their own motion (sub-frames made with optical
#     flow, averaged), about 8, 16 and 32 px at 640x360; and sharp frames in deblur mode (must stay as they are)
for L in 8 16 32; do
    "$VR" eval "$OUT/clips360" "${W[@]}" --protocol deblur --stride 16 --exposure 15 --blur-length "$L" \
        --methods model,repeat --json > "$OUT/clips_deblur_flow${L}px.json"
done
"$VR" eval "$OUT/clips360" "${W[@]}" --protocol deblur --stride 1 --exposure 1 --methods model --json \
    > "$OUT/clips_deblur_sharp.json"
# (e) camera motion on real frames: held-out frames blurred along a 16 px line, as static 5-frame videos, deblur mode
"$PY" scripts/check_linear_blur.py ${2:+--weights "$2"} --length 16 --json > "$OUT/linear_blur16px.json"
# (g) camera motion against the objects' own: frame 40 of each clip as a camera pan of 1.5, 0.5 px per frame,
#     blurred to about 16 px as in (d) (the clips' own motion, in (d), is mostly that of objects)
"$PY" scripts/cut_clips.py --out "$OUT/pan360" --frames 96 --start 40 --size 640x360 --pan 1.5,0.5 --format png \
    > /dev/null
"$VR" eval "$OUT/pan360" "${W[@]}" --protocol deblur --stride 16 --exposure 15 --blur-length 16 \
    --methods model,repeat --json > "$OUT/pan_deblur_flow16px.json"
rm -rf "$OUT/pan360"
# (a') and (b) again for the model with --ensemble 4 (the network over mirrored windows, averaged; ENSEMBLE=0 skips)
if [ "${ENSEMBLE:-1}" = 1 ]; then
"$VR" eval --synthetic "${W[@]}" --methods model --ensemble 4 --json > "$OUT/synthetic_joint_ensemble4.json"
"$VR" eval "$OUT/clips360" "${W[@]}" --methods model --ensemble 4 --protocol interp --stride 2 --json > "$OUT/clips_interp2_ensemble4.json"
fi
rm -rf "$OUT/clips360"
fi
if [ "$PARTS" != quality ]; then
# (c) speed on this machine
# the issue's speed check, three times: on a shared virtual machine one run's time varies by 10-20%; each run
# times minterpolate on the same clip, so each ratio is within one run
for R in 1 2 3; do
    "$VR" bench "${W[@]}" --resolution 640x360 --fps-x 2 --mode interp --json > "$OUT/bench_360p_2x_interp_run$R.json"
done
"$VR" bench "${W[@]}" --resolution 1280x720 --fps-x 2 --mode interp --frames 8 --json > "$OUT/bench_720p_2x_interp.json"
"$VR" bench "${W[@]}" --resolution 640x360 --fps-x 2 --mode interp --frames 24 --ensemble 4 --no-minterpolate --json > "$OUT/bench_360p_2x_interp_ensemble4.json"
"$VR" bench --size default --resolution 1280x720 --fps-x 8 --frames 4 --json > "$OUT/bench_720p_8x_default.json"
fi
echo "results in $OUT"

#!/usr/bin/env python3
"""Chunks and workers, timed: one clip enhanced in one piece by one worker, then in chunks by N workers on a
local Ray, both in this one run on this machine; and what a chunk costs, part by part (decode, model, encode per
frame; the join), from which one can estimate how throughput grows with more workers or GPUs.

    python scripts/scale_bench.py OUTDIR [--seconds 60] [--size 640x360] [--workers 2] [--weights W]

The clip: the first SECONDS of ../shared/data/train/mdn_shared_assets/tears-of-steel-battle-clip-medium.webm
(CC BY 3.0: "Tears of Steel, (CC) Blender Foundation, mango.blender.org"), scaled to SIZE, H.264 with a key
frame every 2 s, with its audio. Runs at 2x in interp mode. Writes OUTDIR/scale_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT.parent / "shared" / "data" / "train" / "mdn_shared_assets" / "tears-of-steel-battle-clip-medium.webm"


def make_clip(source: Path, out: Path, seconds: float, width: int, height: int) -> int:
    """The benchmark clip; returns its frame count."""
    import av
    import numpy as np

    with av.open(str(source)) as src, av.open(str(out), "w") as dst:
        v = src.streams.video[0]
        a = src.streams.audio[0] if src.streams.audio else None
        rate = v.average_rate
        vs = dst.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.codec_context.options = {"crf": "18", "g": str(round(2 * rate)), "preset": "fast"}
        aus = dst.add_stream("aac", rate=48000) if a is not None else None
        if aus is not None:
            aus.layout = "stereo"
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=48000) if a is not None else None
        n = 0
        limit = int(seconds * rate)
        streams = [v] + ([a] if a is not None else [])
        for packet in src.demux(*streams):
            for frame in packet.decode():
                if packet.stream.type == "video":
                    if n >= limit:
                        continue
                    img = frame.to_ndarray(format="rgb24", width=width, height=height)
                    f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                    f.pts, f.time_base = n, Fraction(1) / rate
                    for p in vs.encode(f):
                        dst.mux(p)
                    n += 1
                elif aus is not None and frame.time is not None and frame.time < seconds:
                    for r in resampler.resample(frame):
                        r.pts = None
                        for p in aus.encode(r):
                            dst.mux(p)
        for p in vs.encode():
            dst.mux(p)
        if aus is not None:
            for p in aus.encode():
                dst.mux(p)
    return n


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def enhance(clip: Path, out: Path, weights: str | None, *extra: str) -> float:
    cmd = [sys.executable, "-m", "vidrestore", "enhance", str(clip), "-o", str(out), "--mode", "interp",
           "--fps-x", "2", "--overwrite", "--quiet", *extra]
    if weights:
        cmd += ["--weights", weights]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def killed_and_resumed(clip: Path, out: Path, reference: Path, weights: str | None, workers: int) -> dict:
    """``kill -9`` of the chunked job once about half its chunks are done, then the same command again:
    how many chunks the rerun reused, its time, and whether its frames equal the uninterrupted run's."""
    import numpy as np

    from vidrestore.io.probe import open_input
    from vidrestore.scale.manifest import job_dir

    cmd = [sys.executable, "-m", "vidrestore", "enhance", str(clip), "-o", str(out), "--mode", "interp",
           "--fps-x", "2", "--overwrite", "--workers", str(workers), "--chunks", "auto"]
    if weights:
        cmd += ["--weights", weights]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = job_dir(out) / "manifest.json"
    done = total = 0
    while proc.poll() is None:
        try:
            data = json.loads(manifest.read_text())
            done, total = len(data["done"]), len(data["chunks"])
        except (OSError, ValueError, KeyError):
            pass
        if total and done >= total / 2:
            break
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    t0 = time.perf_counter()
    rerun = subprocess.run(cmd, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - t0

    def frames(path: Path):
        with open_input(path) as c:
            return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]

    a, b = frames(reference), frames(out)
    same = len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    said = [line for line in rerun.stderr.splitlines() if "resuming" in line]
    return {"chunks": total, "done_when_killed": done, "rerun_s": round(seconds, 1),
            "rerun_said": said[0] if said else "", "frames_equal_uninterrupted": same}


def ray_startup(weights: str | None, workers: int) -> float:
    """Seconds from nothing to ``workers`` Ray actors with their model loaded (a local Ray, started here)."""
    from vidrestore.config import EnhanceConfig, RunOptions
    from vidrestore.scale.pool import RayPool

    t0 = time.perf_counter()
    pool = RayPool(EnhanceConfig(input="x.mp4", output="y.mp4", run=RunOptions(weights=weights)), workers)
    pool.pids()  # waits for every actor's constructor
    seconds = time.perf_counter() - t0
    pool.stop()
    return seconds


def part_costs(clip: Path, out_dir: Path, weights: str | None, workers: int) -> dict[str, float]:
    """Seconds per input frame of decoding and of the model (interp 2x, frames in memory), and per output
    frame of encoding, each with one worker's share of the cores."""
    import torch

    from vidrestore import runtime, threads
    from vidrestore.config import EnhanceConfig, RunOptions
    from vidrestore.engine import Engine
    from vidrestore.io import files
    from vidrestore.io.probe import probe
    from vidrestore.io.reader import FrameReader
    from vidrestore.io.writer import VideoWriter
    from vidrestore.pipeline import engine_config, writer_spec
    from vidrestore.plan import plan

    per = threads.apply(max(1, threads.resolve(None) // workers))
    info = probe(clip)
    t0 = time.perf_counter()
    with FrameReader(info, threads=per) as reader:
        frames = [f.rgb for f in reader]
    decode = (time.perf_counter() - t0) / len(frames)
    config = EnhanceConfig(input=clip, output=out_dir / "parts.mp4", factor=2, mode="interp", overwrite=True,
                           run=RunOptions(weights=weights), threads=per)
    rt = runtime.load(config.run, device=torch.device("cpu"))
    sample = frames[:48]
    engine = Engine(rt, engine_config(config))
    t0 = time.perf_counter()
    made = list(engine.process(iter(sample)))
    model = (time.perf_counter() - t0) / len(sample)
    p = plan(config)
    writer = VideoWriter(writer_spec(p, files.create_temp(config.output)))
    writer.start()
    t0 = time.perf_counter()
    for i, frame in enumerate(made):
        writer.write(frame, p.grid.pts(i), p.grid.step_ticks)
    writer.finish()
    encode = (time.perf_counter() - t0) / len(made)
    return {"decode_s_per_frame": decode, "model_s_per_frame": model, "encode_s_per_output_frame": encode,
            "threads_per_worker": per}


def join_cost(clip: Path, output: Path, out_dir: Path, workers: int) -> tuple[float, int]:
    """Seconds to join ``output``'s video (cut into the chunks ``--chunks auto`` makes, at its key frames)
    and the clip's audio: the join of a chunked run, measured alone. Returns (seconds, chunks)."""
    import av

    from vidrestore.config import EnhanceConfig
    from vidrestore.io import files
    from vidrestore.io.index import frame_index
    from vidrestore.io.join import join
    from vidrestore.pipeline import writer_spec
    from vidrestore.plan import plan
    from vidrestore.scale.chunks import plan_chunks

    config = EnhanceConfig(input=clip, output=out_dir / "joined.mp4", factor=2, mode="interp", overwrite=True)
    p = plan(config)
    n_chunks = len(plan_chunks(frame_index(clip, p.info.video_index), None, workers))
    tb = p.time_base_out
    parts, groups = [], [[]]
    with av.open(str(output)) as src:
        s = src.streams.video[0]
        packets = [pk for pk in src.demux(s) if pk.size]
        per = -(-len(packets) // n_chunks)
        for pk in packets:
            if pk.is_keyframe and len(groups[-1]) >= per:
                groups.append([])
            groups[-1].append(pk)
        for i, group in enumerate(groups):
            path = out_dir / f"chunk{i}.mp4"
            timing = []
            with av.open(str(path), "w") as dst:
                out = dst.add_stream_from_template(s)
                for pk in group:
                    conv = [None if v is None else round(Fraction(v) * s.time_base / tb) for v in (pk.pts, pk.dts)]
                    timing.append((*conv, round(Fraction(pk.duration or 0) * s.time_base / tb)))
                    pk.stream = out
                    dst.mux(pk)
            parts.append((path, timing))
    t0 = time.perf_counter()
    join(parts, writer_spec(p, files.create_temp(config.output)))
    return time.perf_counter() - t0, len(groups)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--source", type=Path, default=SOURCE)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    width, height = (int(x) for x in args.size.split("x"))
    clip = args.out / "clip.mp4"
    n = make_clip(args.source, clip, args.seconds, width, height)
    one = enhance(clip, args.out / "one.mp4", args.weights, "--workers", "1", "--chunks", "1")
    many = enhance(clip, args.out / "many.mp4", args.weights, "--workers", str(args.workers), "--chunks", "auto")
    resumed = killed_and_resumed(clip, args.out / "resumed.mp4", args.out / "many.mp4", args.weights, args.workers)
    startup = ray_startup(args.weights, args.workers)
    costs = part_costs(clip, args.out, args.weights, args.workers)
    costs["ray_startup_s"] = startup
    costs["join_s"], costs["chunks"] = join_cost(clip, args.out / "one.mp4", args.out, args.workers)
    result = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores",
        "clip": {"frames": n, "seconds": args.seconds, "size": args.size, "source": args.source.name},
        "job": "interp 2x, libx264 (the .mp4 default)",
        "one_worker_s": round(one, 1), f"{args.workers}_workers_chunks_auto_s": round(many, 1),
        "speedup": round(one / many, 2), "parts": {k: round(v, 5) for k, v in costs.items()},
        "kill_9_half_way": resumed,
    }
    (args.out / "scale_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Diagnostic: the network against classical DIS flow on real footage, by motion size (flows or frame errors).

For windows of PNG clip folders (as ``scripts/cut_clips.py --format png`` writes them), with every
second frame dropped (2x interp at t = 0.5), prints per clip:

- the in-between frame's PSNR for the model and for DIS flow warping (``vidrestore eval``'s dis-flow);
- the end-point error, in full-resolution pixels, of every flow stage's side-0 flow (time t to F(i))
  against DIS flow from the true in-between frame to F(i), over 1/8-grid cells binned by the size
  of that reference motion, next to the error of predicting no motion at all.

With ``--report errors`` it prints instead, per clip, the mean squared error (8-bit code values) of the
model, of DIS flow interpolation and of plain blending, each split into the share that every motion bin
(the length of DIS flow from the true in-between frame to F(i), per pixel) contributes to the clip's
mean; the bins add up to the total.

Not part of the package; the development notes and model cards quote its numbers (v9's card: the still
pixels of ``03_blocks``, where v8 had an MSE of 21.1 against blending's 7.3).

    python scripts/cut_clips.py --out /tmp/clips360 --frames 91 --size 640x360 --format png
    python scripts/diagnose_flows.py /tmp/clips360 --weights vidrestore-small-v6
    python scripts/diagnose_flows.py /tmp/clips360 --weights vidrestore-small-v8 --report errors
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidrestore.flow import dis_flow, dis_interpolate
from vidrestore.weights import load_model

BINS = (("still <2px", 0.0, 2.0), ("2-6px", 2.0, 6.0), ("6-12px", 6.0, 12.0), (">=12px", 12.0, math.inf))
ERROR_BINS = ((0.0, 1.0), (1.0, 2.0), (2.0, 4.0), (4.0, 8.0), (8.0, 16.0), (16.0, math.inf))


def _read(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path))
    if img is None:
        raise SystemExit(f"cannot read {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * math.log10(255.0**2 / max(mse, 1e-10))


def _window(frames: list[Path], start: int, multiple: int) -> tuple[list[np.ndarray], np.ndarray, torch.Tensor]:
    """The window F(i-1)..F(i+2) at stride 2 from ``start`` (F(i)), the true in-between frame, and the window
    as the model's input [1, 4, 3, H, W], replicate-padded to a multiple of ``multiple``."""
    window = [_read(frames[start + 2 * k]) for k in range(-1, 3)]
    truth = _read(frames[start + 1])
    h, w = truth.shape[:2]
    x = torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in window])
    return window, truth, F.pad(x, (0, (-w) % multiple, 0, (-h) % multiple), mode="replicate")[None]


def _error_report(model: torch.nn.Module, clip: Path, every: int) -> None:
    methods = ("model", "dis", "blend")
    frames = sorted(clip.glob("*.png"))
    sums = {name: np.zeros(len(ERROR_BINS)) for name in methods}
    counts = np.zeros(len(ERROR_BINS))
    for start in range(2, len(frames) - 5, every):
        window, truth, x = _window(frames, start, model.config.multiple)
        h, w = truth.shape[:2]
        with torch.no_grad():
            _, inter = model(x, torch.tensor([0.5]))
        outs = {
            "model": (inter[0, 0, :, :h, :w].clamp(0, 1) * 255).round().permute(1, 2, 0).double().numpy(),
            "dis": dis_interpolate(window[1], window[2], [0.5])[0].astype(np.float64),
            "blend": np.round((window[1].astype(np.float64) + window[2]) / 2),
        }
        motion = np.linalg.norm(dis_flow(truth, window[1]), axis=-1)
        ref = truth.astype(np.float64)
        for i, (lo, hi) in enumerate(ERROR_BINS):
            mask = (motion >= lo) & (motion < hi)
            counts[i] += mask.sum()
            for name, out in outs.items():
                sums[name][i] += ((out - ref) ** 2).mean(axis=-1)[mask].sum()
    total = counts.sum()
    print(f"{clip.name}: MSE " + " ".join(f"{n} {sums[n].sum() / total:.2f}" for n in methods))
    for i, (lo, hi) in enumerate(ERROR_BINS):
        label = f"{lo:g}-{hi:g} px" if hi < math.inf else f">={lo:g} px"
        shares = " ".join(f"{n} {sums[n][i] / total:.2f}" for n in methods)
        print(f"  motion {label:>9} ({counts[i] / total:5.1%} of pixels): MSE share {shares}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", type=Path, help="folder of clip folders of PNG frames")
    ap.add_argument("--weights", default=None, help="weights name or path (default: the bundled default)")
    ap.add_argument("--every", type=int, default=8, help="take a window every N frames")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--report", choices=("flows", "errors"), default="flows",
                    help="flows: PSNR and flow end-point errors; errors: MSE split by motion size")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.weights, torch.device("cpu")).eval()

    for clip in sorted(p for p in args.clips.iterdir() if p.is_dir()):
        if args.report == "errors":
            _error_report(model, clip, args.every)
            continue
        frames = sorted(clip.glob("*.png"))
        psnr_model, psnr_dis = [], []
        err: dict[tuple[str, str], list[float]] = {}
        for start in range(2, len(frames) - 5, args.every):
            window, truth, x = _window(frames, start, model.config.multiple)
            h = truth.shape[0]
            with torch.no_grad():
                _, inter, stages = model(x, torch.tensor([0.5]), with_flows=True)
            out = (inter[0, 0, :, :h, : truth.shape[1]].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            psnr_model.append(_psnr(out, truth))
            psnr_dis.append(_psnr(dis_interpolate(window[1], window[2], [0.5])[0], truth))
            ref = torch.from_numpy(dis_flow(truth, window[1])).permute(2, 0, 1)[None].float()
            ref = F.pad(ref, (0, x.shape[-1] - ref.shape[-1], 0, x.shape[-2] - ref.shape[-2]), mode="replicate")
            grid = stages[0].shape[-2:]
            ref8 = F.adaptive_avg_pool2d(ref, grid)[0]
            size = ref8.norm(dim=0)
            preds = {"zero": torch.zeros_like(ref8)}
            for s, fl in enumerate(stages):
                pred = F.interpolate(fl[0, 0, 0][None], size=ref.shape[-2:], mode="bilinear", align_corners=False)
                preds[f"stage{s}"] = F.adaptive_avg_pool2d(pred * (x.shape[-1] / fl.shape[-1]), grid)[0]
            for name, pred in preds.items():
                e = (pred - ref8).norm(dim=0)
                for label, lo, hi in BINS:
                    mask = (size >= lo) & (size < hi)
                    acc = err.setdefault((name, label), [0.0, 0.0])
                    acc[0] += float(e[mask].sum())
                    acc[1] += float(mask.sum())
        print(f"{clip.name}: PSNR model {np.mean(psnr_model):.2f} dB, dis-flow {np.mean(psnr_dis):.2f} dB "
              f"({len(psnr_model)} windows)")
        total = sum(err[("zero", label)][1] for label, _, _ in BINS)
        for label, _, _ in BINS:
            n = err[("zero", label)][1]
            if n:
                cells = " ".join(f"{name} {err[(name, label)][0] / n:.2f}" for name in preds)
                print(f"  motion {label:>10} ({n / total:5.1%} of cells): EPE {cells}")


if __name__ == "__main__":
    main()

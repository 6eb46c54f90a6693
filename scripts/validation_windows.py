"""Where a network gains and where it does not: one validation source of a training cache, window by window.

    python scripts/validation_windows.py CACHE WEIGHTS [--source motion] [--rows 4] [--image OUT.jpg]

Prints, for the windows whose blurred key frame is furthest from its sharp truth, the input's and the network's
PSNR and each window's share of the source's whole input error (the training log's figure is the PSNR of the mean
squared error over all windows, so these windows weigh most). With ``--image``, the most blurred ``--rows``
windows as rows: the four inputs F(i-1) F(i) F(i+1) F(i+2), the network's key frame, the sharp truth.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cache", type=Path, help="a training cache folder (its val/ holds the validation windows)")
    ap.add_argument("weights", help="weights: a known name or a .safetensors file")
    ap.add_argument("--source", default="motion", help="validation source (motion, real, synthetic, interp)")
    ap.add_argument("--show", type=int, default=12, help="windows printed")
    ap.add_argument("--rows", type=int, default=4, help="windows drawn")
    ap.add_argument("--image", type=Path, default=None, help="write the drawn windows here (.jpg or .png)")
    args = ap.parse_args()

    import cv2

    from vidrestore.train.batches import validation_batches
    from vidrestore.train.cache import read_windows
    from vidrestore.train.prior_loop import outputs
    from vidrestore.weights import load_model

    torch.set_num_threads(1)
    model = load_model(args.weights, torch.device("cpu"), torch.float32).eval()
    windows = {args.source: read_windows(args.cache / "val" / args.source, mmap=False)}
    rows = []
    with torch.no_grad():
        for _, batch in validation_batches(windows):
            key, _ = outputs(model, batch)
            if key is None:
                raise SystemExit(f"the {args.source} windows have no key frames to restore (sharp input)")
            for i in range(batch.key.shape[0]):
                err_in = float((batch.inputs[i, 1].float() - batch.key[i].float()).square().mean())
                err_out = float((key[i].clamp(0, 1) - batch.key[i].float()).square().mean())
                images = [batch.inputs[i, j] for j in range(4)] + [key[i].clamp(0, 1), batch.key[i]]
                rows.append((err_in, err_out, images))
    rows.sort(key=lambda r: -r[0])
    total_in = sum(r[0] for r in rows)
    total_out = sum(r[1] for r in rows)

    def db(err: float) -> float:
        return 10 * math.log10(1.0 / max(err, 1e-10))

    print(f"{args.source}: {len(rows)} windows, input {db(total_in / len(rows)):.2f} dB, "
          f"network {db(total_out / len(rows)):.2f} dB (PSNR of the mean squared error)")
    print("| input dB | network dB | gain | share of the input error |")
    print("| ---: | ---: | ---: | ---: |")
    for err_in, err_out, _ in rows[:args.show]:
        print(f"| {db(err_in):.2f} | {db(err_out):.2f} | {db(err_out) - db(err_in):+.2f} | {err_in / total_in:.2f} |")
    if args.image is not None:
        lines = [np.concatenate([(im.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
                                 for im in images], axis=1) for _, _, images in rows[:args.rows]]
        cv2.imwrite(str(args.image), np.concatenate(lines, axis=0)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
        print(f"wrote {args.image}")


if __name__ == "__main__":
    main()

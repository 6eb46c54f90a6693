"""Write a trained weights file for bundling: same tensors and training metadata, with the model config
written out in full by the current code (fields added after the run was trained, such as
``coarse_match``, become explicit at their current defaults, so the file keeps meaning the same thing).

    python scripts/export_weights.py runs/small-v5-cpu/final.safetensors weights/vidrestore-small-v5.safetensors
"""

from __future__ import annotations

import argparse

import torch

from vidrestore.weights import RESERVED_KEYS, load_model, read_metadata, save_weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    args = ap.parse_args()
    meta = {k: v for k, v in read_metadata(args.src).items() if k not in RESERVED_KEYS}
    model = load_model(args.src, device=torch.device("cpu"))
    sha = save_weights(model, args.dst, extra_metadata=meta)
    print(f"{args.dst}: sha256 {sha}, config {model.config}")


if __name__ == "__main__":
    main()

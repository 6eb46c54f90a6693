"""Write a trained weights file for bundling: same tensors and training metadata, with the model config
written out in full by the current code (fields added after the run was trained, such as
``coarse_match``, become explicit at their current defaults, so the file keeps meaning the same thing).

    python scripts/export_weights.py runs/small-v5-cpu/final.safetensors weights/vidrestore-small-v5.safetensors

``--set FIELD=VALUE`` changes a field of the model config that adds no tensors (e.g. ``static_gate=0.05``):
the same tensors then run with that setting, and the metadata says so (``export.set``).
"""

from __future__ import annotations

import argparse
import json

import torch

from vidrestore.model.network import with_config
from vidrestore.weights import RESERVED_KEYS, load_model, read_metadata, save_weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="change a model config field that adds no tensors (VALUE as JSON)")
    args = ap.parse_args()
    meta = {k: v for k, v in read_metadata(args.src).items() if k not in RESERVED_KEYS}
    model = load_model(args.src, device=torch.device("cpu"))
    if args.set:
        changes = {}
        for item in args.set:
            field, sep, value = item.partition("=")
            if not sep:
                ap.error(f"--set {item}: expected FIELD=VALUE")
            changes[field] = json.loads(value)
        model = with_config(model, **changes)  # strict: the change must not add or drop tensors
        meta["export.set"] = json.dumps(changes, sort_keys=True)
    sha = save_weights(model, args.dst, extra_metadata=meta)
    print(f"{args.dst}: sha256 {sha}, config {model.config}")


if __name__ == "__main__":
    main()

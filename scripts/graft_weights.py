"""Write a weights file whose tensors come from BASE, except the named top-level parts, taken from DONOR.

Both files must be the same model size. The training metadata is BASE's, with a ``graft`` entry that
names the donor and the parts, so the file says where its tensors came from.

    python scripts/graft_weights.py runs/probe-v8-flows/final.safetensors \
        weights/vidrestore-small-v7.safetensors key_branch runs/small-v8-graft.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from vidrestore.weights import RESERVED_KEYS, load_model, read_metadata, save_weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("donor")
    ap.add_argument("parts", help="comma-separated top-level module names, e.g. key_branch")
    ap.add_argument("dst")
    args = ap.parse_args()
    cpu = torch.device("cpu")
    model = load_model(args.base, device=cpu)
    donor = load_model(args.donor, device=cpu)
    if donor.config != model.config:
        raise SystemExit(f"error: {args.donor} is {donor.config.name}, {args.base} is {model.config.name}: "
                         "the configs differ")
    parts = [p for p in args.parts.split(",") if p]
    children = dict(model.named_children())
    for part in parts:
        if part not in children:
            raise SystemExit(f"error: no part {part!r}; parts: {', '.join(children)}")
        children[part].load_state_dict(getattr(donor, part).state_dict())
    meta = {k: v for k, v in read_metadata(args.base).items() if k not in RESERVED_KEYS}
    meta["graft"] = json.dumps({"donor": Path(args.donor).name, "parts": parts})
    sha = save_weights(model, args.dst, extra_metadata=meta)
    print(f"{args.dst}: sha256 {sha}; {', '.join(parts)} from {args.donor}")


if __name__ == "__main__":
    main()

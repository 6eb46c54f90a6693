"""cache-v6 (2026-12-08): cache-v5's real and interp shards and validation windows (hard-linked in beforehand;
the same settings but for synthetic_textures), a settings.json for synthetic_textures = 0.7, and fresh synthetic
shards textured from the training footage.

    python lab/cache_v6.py SHARDS [SEED]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from vidrestore.train.cache import WindowCache, WindowMaker
from vidrestore.train.prior_loop import load_prior_recipe

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "prior-small.toml"


def main() -> None:
    torch.set_num_threads(1)
    cfg = load_prior_recipe(RECIPE, {"out": "x", "synthetic_textures": 0.7})
    settings = cfg.cache_settings()
    folder = Path.home() / "vidrestore-runs" / "cache-v6"
    meta = folder / "settings.json"
    if not meta.exists():
        meta.write_text(json.dumps({"fingerprint": settings.fingerprint(), **settings.to_json()}, indent=1,
                                   sort_keys=True))
    cache = WindowCache(folder, settings)
    if not cache.prepare():
        raise SystemExit("settings.json did not match: the folder was made anew")
    maker = WindowMaker(settings, threads=1)
    g = torch.Generator().manual_seed(int(sys.argv[2]) if len(sys.argv) > 2 else 606)
    for i in range(int(sys.argv[1])):
        t = time.monotonic()
        cache.add(maker.shard(g, source="synthetic"))
        print(f"synthetic shard {i + 1} in {time.monotonic() - t:.1f} s", flush=True)


if __name__ == "__main__":
    main()

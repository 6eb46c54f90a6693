"""cache-v6: cache-v5's real and interp shards and validation windows (hard links; the same settings but for
synthetic_textures), its settings.json for synthetic_textures = 0.7, and fresh synthetic shards made with
textures cut from the training footage."""
import json, sys, time, torch
from pathlib import Path
torch.set_num_threads(1)
from vidrestore.train.prior_loop import load_prior_recipe
from vidrestore.train.cache import WindowCache, WindowMaker
cfg = load_prior_recipe('/work/main/recipes/prior-small.toml', {'out': 'x', 'synthetic_textures': 0.7})
st = cfg.cache_settings()
folder = Path.home() / 'vidrestore-runs/cache-v6'
meta = folder / 'settings.json'
if not meta.exists():
    meta.write_text(json.dumps({"fingerprint": st.fingerprint(), **st.to_json()}, indent=1, sort_keys=True))
cache = WindowCache(folder, st)
assert cache.prepare(), "settings do not match"
maker = WindowMaker(st, threads=1)
g = torch.Generator().manual_seed(int(sys.argv[2]) if len(sys.argv) > 2 else 606)
for i in range(int(sys.argv[1])):
    t = time.monotonic()
    cache.add(maker.shard(g, source="synthetic"))
    print(f"synthetic shard {i + 1} in {time.monotonic() - t:.1f} s", flush=True)

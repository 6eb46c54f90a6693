"""The engine with the tiny random-weight flow-prior network: frame bookkeeping, modes, scene cuts, batching,
tiles, out-of-memory retry, and memory that stays flat in the video's length."""

from __future__ import annotations

import copy
import tracemalloc

import numpy as np
import pytest
import torch

from conftest import make_engine, moving_pattern, real_frames
from vidrestore.errors import ProcessingError


def run(model, frames, cuts=None, **kw):
    kw.setdefault("scene_threshold", None)
    engine = make_engine(model, **kw)
    return list(engine.process(iter(frames), cuts)), engine


def assert_same_frames(a, b, count):
    """``count`` frames each, the same up to one code value on at most 0.1% of the pixels: sums in another
    order (a batch, a memory layout) can round a rare pixel to the next value."""
    diff = np.stack([np.abs(x.astype(np.int16) - y.astype(np.int16)) for x, y in zip(a, b)])
    assert len(a) == len(b) == count and diff.max() <= 1 and (diff > 0).mean() <= 1e-3


class SpyModel(torch.nn.Module):
    """Wraps the model and records which input frames (by their pixel sums) each window uses."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.config = inner.config
        self.windows: list[list[float]] = []
        self.with_key: list[bool] = []
        self.sharp: list[bool] = []
        self.time_chunks: list[int] = []

    def encode(self, x):
        return self.inner.encode(x)

    def restore_parts(self, frames, feats, times, with_key=True, sharp=False, prior=None, time_chunk=0):
        self.with_key.append(with_key)
        self.sharp.append(sharp)
        self.time_chunks.append(time_chunk)
        for b in range(frames[0].shape[0]):
            self.windows.append([round(float(f[b].sum()), 2) for f in frames])
        return self.inner.restore_parts(frames, feats, times, prior=prior, with_key=with_key, sharp=sharp,
                                  time_chunk=time_chunk)


@pytest.mark.parametrize("factor", [1, 2, 4, 8])
@pytest.mark.parametrize("mode", ["joint", "interp", "deblur"])
def test_output_count_and_order(tiny_model, factor, mode):
    frames = moving_pattern(5, 40, 24)
    out, engine = run(tiny_model, frames, factor=factor, mode=mode, batch=2)
    k = 1 if mode == "deblur" else factor
    assert len(out) == 5 * k == engine.stats.frames_out
    assert all(o.shape == (24, 40, 3) and o.dtype == np.uint8 for o in out)
    # after the last input frame the K-1 remaining outputs repeat it
    assert all(np.array_equal(out[-k], o) for o in out[-k:])
    if mode == "interp":
        assert all(out[j * k] is frames[j] for j in range(5))  # untouched input frames


def test_joint_with_k1_is_deblur(tiny_model):
    frames = moving_pattern(4, 40, 24)
    a, _ = run(tiny_model, frames, factor=1, mode="joint")
    b, _ = run(tiny_model, frames, factor=8, mode="deblur")
    assert len(a) == len(b) == 4
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_joint_restores_key_frames_interp_does_not(tiny_model):
    frames = moving_pattern(4, 40, 24)
    spy = SpyModel(tiny_model)
    out, _ = run(spy, frames, factor=2, mode="joint")
    assert spy.with_key and all(spy.with_key)  # every window restores its key frame
    assert not any(spy.sharp)  # joint inputs may be blurred
    assert not np.array_equal(out[1], out[0]) and not np.array_equal(out[1], out[2])  # new frames
    spy = SpyModel(tiny_model)
    run(spy, frames, factor=2, mode="interp")
    assert spy.with_key and not any(spy.with_key)
    assert all(spy.sharp)  # interp mode tells the model its inputs are sharp


def test_in_between_frames_made_a_few_at_a_time_are_the_same_frames(tiny_model):
    """On the CPU the engine makes the in-between frames one at a time (less memory, fewer fresh pages): the
    frames are those made all at once."""
    frames = moving_pattern(5, 40, 24)
    spy = SpyModel(tiny_model)
    one, _ = run(spy, frames, factor=4, mode="joint")
    assert spy.time_chunks and set(spy.time_chunks) == {1}  # the CPU's default
    for chunk in (0, 2):
        other, _ = run(tiny_model, frames, factor=4, mode="joint", time_chunk=chunk)
        assert_same_frames(one, other, 20)


def test_restore_parts_are_restore_in_pieces(tiny_model):
    """The network's in-between frames part by part (what the engine pastes as they come) are its frames all at
    once, in order; with the flip ensemble too."""
    from vidrestore.model.ensemble import FlipEnsemble
    from vidrestore.model.prior_net import PriorFlows

    x = [torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    times = torch.arange(1, 8, dtype=torch.float32) / 8
    for model in (tiny_model, FlipEnsemble(tiny_model, 2)):
        feats = [model.encode(f) for f in x]
        with torch.no_grad():
            key, whole = model.restore(x, feats, times, PriorFlows.zero(32, 48))
            key2, parts = model.restore_parts(x, feats, times, PriorFlows.zero(32, 48), time_chunk=3)
            parts = list(parts)
        assert [p.shape[1] for p in parts] == [3, 3, 1]
        assert torch.equal(key, key2)
        torch.testing.assert_close(torch.cat(parts, dim=1), whole, rtol=0, atol=1e-6)


def test_cpu_runs_give_freed_memory_back_every_few_groups(tiny_model, monkeypatch):
    """On the CPU the engine asks the allocator to return its free pages every CPU_TRIM_EVERY groups of windows
    (bounded memory over a long video), not after every group (page faults)."""
    from vidrestore import engine as engine_mod

    calls: list[int] = []
    monkeypatch.setattr(engine_mod.threads, "release_freed_memory", lambda keep: calls.append(keep) or True)
    n = 2 * engine_mod.CPU_TRIM_EVERY + 3
    _, engine = run(tiny_model, moving_pattern(n, 40, 24), factor=2, batch=1)
    assert calls == [engine_mod.CPU_FREE_KEPT] * 2 and engine.stats.memory_trims == 2


def test_release_freed_memory_trims_only_past_what_it_keeps():
    from vidrestore import threads

    if threads._glibc() is None:
        pytest.skip("not glibc (malloc_trim and mallinfo2): nothing to release")
    blocks = [bytearray(1 << 20) for _ in range(64)]  # 64 MB of heap blocks (under the mmap threshold)
    del blocks
    assert not threads.release_freed_memory(1 << 40)  # far less free than that: kept
    assert threads.release_freed_memory(0)


def test_batch_size_does_not_change_results(tiny_model):
    frames = moving_pattern(6, 40, 24)
    a, _ = run(tiny_model, frames, factor=3, batch=1)
    b, eb = run(tiny_model, frames, factor=3, batch=4)
    # the same frames; a batched convolution may sum in another order (about 1e-6 apart before rounding)
    assert_same_frames(a, b, 18)
    assert eb.stats.encoded_frames == 6  # every frame encoded once and reused from the cache


def test_cpu_runs_channels_last_and_gives_the_default_layouts_frames(tiny_model):
    """The run path puts the network channels-last on the CPU (faster oneDNN convolutions); the frames are
    those of the default layout."""
    from vidrestore import runtime
    from vidrestore.engine import Engine, EngineConfig

    frames = moving_pattern(5, 48, 32)
    got, engine = run(tiny_model, frames, factor=2, mode="joint")
    first = engine.model.encoder.s1[0].weight
    assert first.dim() == 4 and first.shape[1] > 1 and first.is_contiguous(memory_format=torch.channels_last)
    plain = copy.deepcopy(tiny_model).to(memory_format=torch.contiguous_format)
    assert plain.encoder.s1[0].weight.is_contiguous()
    rt = runtime.Runtime(model=plain, device=torch.device("cpu"), dtype=torch.float32, label="plain")
    want = list(Engine(rt, EngineConfig(factor=2, mode="joint", scene_threshold=None)).process(iter(frames)))
    assert_same_frames(got, want, 10)


def test_odd_sizes_are_padded_and_cropped(tiny_model):
    frames = moving_pattern(3, 37, 21)
    out, _ = run(tiny_model, frames, factor=2)
    assert all(o.shape == (21, 37, 3) for o in out)


def test_16_bit_frames_stay_16_bit(tiny_model):
    frames = [f.astype(np.uint16) * 257 for f in moving_pattern(3, 32, 16)]
    out, _ = run(tiny_model, frames, factor=2)
    assert all(o.dtype == np.uint16 for o in out)
    out_i, _ = run(tiny_model, frames, factor=2, mode="interp")
    assert out_i[0] is frames[0]


def test_scene_cut_holds_frames_and_never_mixes_scenes(tiny_model):
    a = real_frames("01_dog.mp4", 4, 48, 32)
    b = real_frames("03_blocks.mp4", 4, 48, 32)
    k = 4
    out, engine = run(tiny_model, a + b, factor=k, mode="joint", scene_threshold=0.15)
    assert engine.stats.cut_indices == [4]
    last_a = out[3 * k]
    for i in range(1, k):  # after the last frame before the cut: held copies, not blends
        assert np.array_equal(out[3 * k + i], last_a)
    # with the cut given explicitly, results match detection; without it, they differ (blends)
    explicit, _ = run(tiny_model, a + b, cuts=[j == 4 for j in range(8)], factor=k)
    assert all(np.array_equal(x, y) for x, y in zip(out, explicit))
    blended, _ = run(tiny_model, a + b, factor=k, scene_threshold=None)
    assert not np.array_equal(blended[3 * k + 1], blended[3 * k])


def test_no_window_uses_frames_across_a_cut(tiny_model):
    a = real_frames("01_dog.mp4", 3, 48, 32)
    b = real_frames("02_cups.mp4", 3, 48, 32)
    spy = SpyModel(tiny_model)
    run(spy, a + b, factor=2, scene_threshold=0.15)
    sums = [round(float(torch.from_numpy(f).permute(2, 0, 1).float().div(255).sum()), 2) for f in a + b]
    scene_of = {s: (0 if i < 3 else 1) for i, s in enumerate(sums)}
    assert len(spy.windows) == 6
    for w in spy.windows:
        scenes = {scene_of[min(scene_of, key=lambda s: abs(s - x))] for x in w}
        assert len(scenes) == 1, w


def test_tiles_cover_the_frame(tiny_model):
    frames = moving_pattern(3, 100, 52)
    whole, _ = run(tiny_model, frames, factor=2)
    same, _ = run(tiny_model, frames, factor=2, tile=128)  # one tile covers everything
    tiled, et = run(tiny_model, frames, factor=2, tile=32, tile_overlap=16, batch=4)
    assert all(np.array_equal(x, y) for x, y in zip(whole, same))
    assert len(tiled) == 6 and all(t.shape == (52, 100, 3) for t in tiled)
    assert et.stats.encoded_frames == 3 * len(et._current_tiles())


class OomAboveBatch(SpyModel):
    def restore_parts(self, frames, feats, times, with_key=True, sharp=False, prior=None, time_chunk=0):
        if frames[0].shape[0] > 1:
            raise torch.OutOfMemoryError("fake: out of memory")
        return self.inner.restore_parts(frames, feats, times, prior=prior, with_key=with_key, sharp=sharp,
                                  time_chunk=time_chunk)


class AlwaysOom(SpyModel):
    def restore_parts(self, frames, feats, times, with_key=True, sharp=False, prior=None, time_chunk=0):
        raise torch.OutOfMemoryError("fake: out of memory")


def test_out_of_memory_halves_the_batch_then_gives_a_clear_error(tiny_model):
    frames = moving_pattern(5, 40, 24)
    ref, _ = run(tiny_model, frames, factor=2, batch=1)
    out, engine = run(OomAboveBatch(tiny_model), frames, factor=2, batch=4)
    assert engine.stats.oom_retries == 2 and engine._chunk == 1
    assert all(np.array_equal(x, y) for x, y in zip(ref, out))
    with pytest.raises(ProcessingError, match="out of memory"):
        run(AlwaysOom(tiny_model), moving_pattern(3, 40, 24), factor=2, batch=1)


def test_plan_memory_keeps_whole_frames_lowers_batch_then_tiles():
    from vidrestore.memory import plan_memory

    # 100 bytes per pixel, 1280x720 frames: 92 MB per item
    assert plan_memory(720, 1280, 100.0, 1e9, 4, 8) == (4, None)  # 4 items fit
    assert plan_memory(720, 1280, 100.0, 2e8, 4, 8) == (2, None)  # only 2 do
    batch, tile = plan_memory(2160, 3840, 100.0, 5e7, 4, 8)  # 4K: one frame is 830 MB
    assert tile is not None and tile % 8 == 0 and 100.0 * tile * tile <= 5e7 < 100.0 * (tile + 8) ** 2
    assert batch == 1
    assert plan_memory(2160, 3840, 100.0, 10.0, 1, 8, min_tile=64) == (1, 64)  # never below the floor
    with pytest.raises(ValueError):
        plan_memory(720, 1280, 0.0, 1e9, 1, 8)


def test_memory_budget_tiles_like_an_explicit_tile(tiny_model, monkeypatch):
    """With a budget too small for whole frames, the engine tiles; the output equals an explicit tile run."""
    frames = moving_pattern(4, 160, 112)
    engine = make_engine(tiny_model, factor=2, scene_threshold=None, gpu_memory_gb=1 / 1024, batch=2)
    monkeypatch.setattr(engine, "_budget_bytes", lambda: 1.0 * 2**20)
    monkeypatch.setattr(engine, "_probe_bytes_per_pixel", lambda: 2**20 / (88 * 88))  # 88x88 px fit
    planned = list(engine.process(iter(frames)))
    assert engine.stats.planned_tile == 80 and engine.stats.planned_batch == 1  # a multiple of the model's 16
    explicit, _ = run(tiny_model, frames, factor=2, tile=80, batch=1)
    assert len(planned) == 8 and all(np.array_equal(x, y) for x, y in zip(planned, explicit))
    cpu = make_engine(tiny_model, factor=2, gpu_memory_gb=1 / 1024)
    assert cpu._budget_bytes() is None  # the budget is for CUDA memory; CPUs run unplanned


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_memory_probe_on_cuda(tiny_model):
    frames = moving_pattern(3, 320, 256)
    engine = make_engine(tiny_model.cuda(), device="cuda", factor=4, scene_threshold=None, gpu_memory_gb=1 / 1024)
    out = list(engine.process(iter(frames)))
    assert len(out) == 12 and engine.stats.probe_bytes_per_pixel > 0
    assert engine.stats.planned_tile is not None and engine.stats.planned_tile < 320


def _frames(n, h=16, w=32):
    base = moving_pattern(4, w, h)
    for i in range(n):
        yield base[i % 4].copy()


@pytest.mark.parametrize("batch", [1, 3])
def test_frames_held_do_not_grow_with_video_length(tiny_model, batch):
    held = []
    for n in (12, 120):
        engine = make_engine(tiny_model, factor=2, batch=batch, scene_threshold=0.15)
        assert sum(1 for _ in engine.process(_frames(n))) == 2 * n
        held.append((engine.stats.max_frames_held, engine.stats.max_features_cached))
    assert held[0] == held[1]
    assert held[1][0] <= batch + 3 and held[1][1] <= batch + 3


def test_peak_memory_is_flat_in_video_length(tiny_model):
    """10x more frames: no higher peak of Python-tracked allocations (the numpy frames)."""
    peaks = []
    for n in (6, 60):
        engine = make_engine(tiny_model, factor=2, batch=2, scene_threshold=0.15)
        tracemalloc.start()
        try:
            count = sum(1 for _ in engine.process(_frames(n)))
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert count == 2 * n
    # a list of all outputs would add 54 frames x 1.5 KB = 83 KB; allow far less than that
    assert peaks[1] < peaks[0] + 40_000, peaks


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_precision_matches_fp32(tiny_model, dtype):
    import copy

    model = copy.deepcopy(tiny_model).cuda()
    frames = moving_pattern(5, 40, 24)
    ref, _ = run(model, frames, factor=4, device="cuda", dtype=torch.float32)
    half, _ = run(model, frames, factor=4, device="cuda", dtype=dtype, batch=3)
    assert len(half) == len(ref) == 20
    diff = max(np.abs(a.astype(int) - b.astype(int)).max() for a, b in zip(ref, half))
    assert diff <= 12

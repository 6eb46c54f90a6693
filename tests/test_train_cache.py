"""The training window cache and its augmentations: windows made once, remade when their settings change,
refreshed oldest first; flips, rotations and time reversal keep every window's flows true to its frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import reds_rgb
from vidrestore.model.warp import backward_warp
from vidrestore.train.batches import CachedBatches, flip_flow, make_batch, rotate_flow, rotate_image
from vidrestore.train.cache import CacheSettings, WindowCache, WindowMaker, fill, read_windows
from vidrestore.train.prior_data import BlurConfig, RealSampler, Windows


def _shifted_pair(d=(3, -2)):
    """a and b with a(p) = b(p + d): the backward flow from a to b is d everywhere."""
    rng = np.random.default_rng(0)
    base = np.kron(rng.random((16, 20)), np.ones((4, 4))).astype(np.float32)
    a = base[8:-8, 8:-8]
    b = np.roll(base, (d[1], d[0]), axis=(0, 1))[8:-8, 8:-8]
    flow = np.zeros((*a.shape, 2), np.float32)
    flow[..., 0], flow[..., 1] = d
    return a[..., None], b[..., None], flow


def _warp_error(a, b, flow) -> float:
    """max |b(p + flow(p)) - a(p)| away from the borders."""
    t = [torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None] for x in (a, b, flow)]
    return float((backward_warp(t[1], t[2]) - t[0])[..., 6:-6, 6:-6].abs().max())


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
@pytest.mark.parametrize("mirror", [False, True])
def test_flips_and_rotations_turn_the_flow_with_the_image(turns, mirror):
    a, b, flow = _shifted_pair()
    assert _warp_error(a, b, flow) < 1e-4
    if mirror:
        a, b, flow = a[:, ::-1], b[:, ::-1], flip_flow(flow, "x")
    a2, b2, f2 = rotate_image(a, turns), rotate_image(b, turns), rotate_flow(flow, turns)
    assert _warp_error(a2, b2, f2) < 1e-4
    if turns % 2:  # a wrong turn of the vectors would not warp back
        assert _warp_error(a2, b2, rotate_image(flow, turns)) > 0.1


def _windows(n=4, size=48, seed=0, sharp=False) -> Windows:
    video = torch.from_numpy(np.stack([reds_rgb(i) for i in range(10)] * 2))
    return RealSampler([video], threads=1).sample(n, size, torch.Generator().manual_seed(seed), sharp=sharp)


def test_every_augmented_flow_still_maps_its_frames_onto_each_other():
    w = _windows(2, sharp=True)  # sharp: only the geometry differs between the frames
    rng = np.random.default_rng(0)
    for _ in range(20):
        b = make_batch([(w, 0), (w, 1)], 48, 2, rng, "real")
        for flow, (src, dst) in ((b.prior.f01, (1, 2)), (b.prior.f10, (2, 1)), (b.prior.f0p, (1, 0))):
            warped = backward_warp(b.inputs[:, dst], flow)
            err = (warped - b.inputs[:, src]).abs()[..., 8:-8, 8:-8].mean()
            plain = (b.inputs[:, dst] - b.inputs[:, src]).abs()[..., 8:-8, 8:-8].mean()
            assert err < 0.7 * plain
        assert b.times.shape == (2, 2) and ((b.times > 0) & (b.times < 1)).all()


def test_a_reversed_window_takes_the_next_frame_as_key_and_swaps_its_flows():
    w = _windows(1)
    rng = np.random.default_rng(3)
    found = False
    for _ in range(30):
        b = make_batch([(w, 0)], 48, 1, rng, "real")
        # undo the jitter-free part: find the transform by matching F(i+1)'s input to the batch's F(i)
        src = torch.from_numpy(w.inputs[0].astype(np.float32) / 255).permute(0, 3, 1, 2)
        for turns in range(4):
            for mirror in (False, True):
                cand = src.flip(-1) if mirror else src
                cand = torch.rot90(cand, turns, dims=(-2, -1))
                if torch.allclose(cand[2], b.inputs[0, 1], atol=0.2) and not torch.allclose(cand[1], b.inputs[0, 1],
                                                                                               atol=0.2):
                    found = True
                    assert torch.allclose(cand[3], b.inputs[0, 0], atol=0.2)  # the window backwards
    assert found


def _settings(tmp_path, clip, **kw) -> CacheSettings:
    args = dict(footage=(str(clip),), holdout=(), holdout_frames=0, max_side=96, max_frames=40, crop=48,
                mix=(("real", 1.0), ("interp", 1.0)), blur=BlurConfig(), shard=8)
    args.update(kw)
    return CacheSettings(**args)


def test_the_cache_is_remade_when_its_settings_change_and_refreshed_oldest_first(tmp_path):
    from conftest import write_clip

    clip = write_clip(tmp_path / "clip.mp4", n=40, size=(96, 64), audio=False)
    settings = _settings(tmp_path, clip)
    cache = WindowCache(tmp_path / "cache", settings)
    assert cache.prepare() is False  # new
    maker = WindowMaker(settings, threads=1, log=lambda s: None)
    g = torch.Generator().manual_seed(0)
    assert fill(cache, maker, 16, g, log=lambda s: None) == 2
    assert cache.count() == 16 and cache.prepare() is True  # kept: same settings
    first = cache.shards()[0].name
    fill(cache, maker, 16, g, minutes=0.02, keep_going=True, log=lambda s: None)  # fresh shards replace old ones
    assert cache.count() == 16 and first not in {p.name for p in cache.shards()}
    w = read_windows(cache.shards()[-1])
    assert len(w) == 8 and w.inputs.shape[-3:] == (48, 48, 3)
    batches = CachedBatches(cache, seed=0)
    # each shard is of one source, drawn by the mix: after the refresh either may be the only one left
    source = "real" if batches.windows("real") else "interp"
    b = batches.next(source, 3, 32, 2)
    assert b.inputs.shape == (3, 4, 3, 32, 32) and b.prior.f01.shape == (3, 2, 32, 32)
    assert b.key.shape == (3, 3, 32, 32) and b.inter.shape == (3, 2, 3, 32, 32)
    for changed in (dict(crop=64), dict(blur=BlurConfig(shake_length=(1.0, 8.0))), dict(max_side=80)):
        again = WindowCache(tmp_path / "cache", _settings(tmp_path, clip, **changed))
        assert again.prepare() is False and again.count() == 0  # other settings: made anew
        WindowCache(tmp_path / "cache", settings).prepare()


@pytest.mark.slow
def test_training_hours_leave_out_the_time_the_run_was_stopped():
    """A run paused with SIGSTOP (while a benchmark runs) does not count the pause as training time."""
    import os
    import signal
    import subprocess
    import sys
    import time

    code = ("import time, sys\nfrom vidrestore.train.prior_loop import TrainingClock\nc = TrainingClock(0.2)\n"
            "print('ready', flush=True)\nt0 = time.monotonic()\n"
            "while time.monotonic() - t0 < 5.0:\n    time.sleep(0.05)\n"
            "print(round(c.seconds(), 2), round(time.monotonic() - t0, 2), flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGSTOP)
    time.sleep(3.0)
    os.kill(proc.pid, signal.SIGCONT)
    out, _ = proc.communicate(timeout=30)
    trained, wall = (float(x) for x in out.split())
    assert wall >= 5.0
    assert 1.5 < trained < 3.0  # about the 2 s it ran, not the 5 s that passed


def test_a_kind_of_blur_left_off_does_not_change_the_fingerprint(tmp_path):
    """Blur settings at 0 (a kind of blur not used) are left out of the fingerprint: a kind added to the code
    later, off by default, keeps the caches made before it; turning it on remakes them."""
    import dataclasses

    base = _settings(tmp_path, tmp_path / "clip.mp4")
    assert "line_prob" not in base.to_json()["blur"]
    on = dataclasses.replace(base, blur=dataclasses.replace(base.blur, line_prob=0.3))
    assert on.fingerprint() != base.fingerprint() and on.to_json()["blur"]["line_prob"] == 0.3
    assert base.to_json()["blur"]["lucky_prob"] == BlurConfig().lucky_prob  # the others stay in


def test_motion_validation_windows_join_a_cache_made_before_them(tmp_path):
    """The ``motion`` validation windows (held-out frames blurred by their own motion only, every 16th frame, as
    the release checks blur them) are added to a cache's validation set made before them; the others stay."""
    from conftest import write_clip
    from vidrestore.train.cache import MOTION_WINDOWS, ensure_validation
    from vidrestore.train.prior_data import BLURRED

    clip = write_clip(tmp_path / "clip.mp4", n=80, size=(96, 64), audio=False)
    settings = _settings(tmp_path, clip, holdout=(str(clip),), holdout_frames=80)
    cache = WindowCache(tmp_path / "cache", settings)
    cache.prepare()
    first = ensure_validation(cache, ["real"], log=lambda s: None)
    assert set(first) == {"real"}
    both = ensure_validation(cache, ["real", "motion"], log=lambda s: None)
    assert set(both) == {"real", "motion"} and np.array_equal(both["real"].inputs, first["real"].inputs)
    m = both["motion"]
    assert len(m) == MOTION_WINDOWS and (m.kind == BLURRED).all()
    assert np.allclose(m.times * 16, np.round(m.times * 16)) and (m.times > 0).all()  # times k/16, 3 kept
    blurred = np.abs(m.inputs[:, 1].astype(np.int16) - m.key[:, 0].astype(np.int16)).mean()
    assert blurred > 0.1  # the key frames are blurred
    assert not list(cache.val_folder.glob("*.tmp*"))
    again = ensure_validation(cache, ["real", "motion"], log=lambda s: None)
    assert np.array_equal(again["motion"].inputs, m.inputs)  # made once


def test_motion_crops_find_where_the_scene_moves():
    """``motion_crops``: a window's crop is the most moving of a few drawn, so the scene's own motion blurs what
    is trained on; off (the default), the crops are drawn as before, with no extra random draw."""
    import dataclasses

    g = torch.Generator().manual_seed(0)
    n, h, w = 40, 96, 192
    video = (torch.rand(1, h, w, 3, generator=g) * 255).to(torch.uint8).repeat(n, 1, 1, 1)  # still
    square = (torch.rand(24, 24, 3, generator=g) * 255).to(torch.uint8)
    for t in range(n):  # a square moving across the right half only
        x = 100 + (3 * t) % 60
        video[t, 30:54, x:x + 24] = square
    base = BlurConfig(strides=(2,))
    plain = RealSampler([video], base, threads=1)
    moving = RealSampler([video], dataclasses.replace(base, motion_crops=1.0, motion_tries=4), threads=1)

    def right_share(sampler, seed):
        gen = torch.Generator().manual_seed(seed)
        xs = [sampler.place(0, 12, 48, 4, gen, tries=4 if sampler is moving else 1, stride=2)[2] for _ in range(200)]
        return float(np.mean([x + 48 > 100 for x in xs]))

    assert right_share(moving, 1) > right_share(plain, 1) + 0.2
    a = plain.sample(4, 48, torch.Generator().manual_seed(3))
    b = RealSampler([video], dataclasses.replace(base, motion_tries=9), threads=1).sample(
        4, 48, torch.Generator().manual_seed(3))
    assert np.array_equal(a.inputs, b.inputs)  # off: the same windows as before the option


def test_synthetic_textures_from_the_footage_and_off_by_default(tmp_path):
    """Off (0), the setting is left out of the fingerprint (the caches made before it stay); on, synthetic scenes
    take their textures from the footage's frames."""
    import dataclasses

    from vidrestore.train.prior_data import SyntheticSampler, footage_textures

    base = _settings(tmp_path, tmp_path / "clip.mp4")
    assert "synthetic_textures" not in base.to_json()
    on = dataclasses.replace(base, synthetic_textures=0.7)
    assert on.fingerprint() != base.fingerprint() and on.to_json()["synthetic_textures"] == 0.7

    red = torch.zeros(30, 64, 80, 3, dtype=torch.uint8)
    red[..., 0] = 200
    bank = footage_textures([red], every=10)
    assert len(bank) == 3 and bank.images[0].shape == (3, 64, 80)
    g = torch.Generator().manual_seed(0)
    w = SyntheticSampler(textures=bank, threads=1, real_fraction=1.0).sample(4, 32, g)
    key = w.key[:, 0].astype(np.float32)  # [N, H, W, 3]: every texture is the red frame (colour-permuted at times)
    assert (key.max(axis=-1) > 100).mean() > 0.9  # a bright channel everywhere: no procedural texture
    assert (np.sort(key, axis=-1)[..., :2] < 40).mean() > 0.9  # and the other two dark
    procedural = SyntheticSampler(threads=1).sample(4, 32, torch.Generator().manual_seed(0))
    assert (np.sort(procedural.key[:, 0].astype(np.float32), axis=-1)[..., :2] < 40).mean() < 0.9

"""Synthetic scenes with exact ground truth for joint deblurring + interpolation.

A scene is a textured background layer moved by a smooth camera motion (pan, zoom, rotation) and
0-4 textured foreground objects (soft-edged ellipses, blobs, polygons) with their own smooth motion,
occluding each other in depth order. Every layer's pose is a quadratic function of continuous time
(constant velocity plus a small acceleration), so the scene can be rendered exactly at any instant
with ``grid_sample``.

Time is measured in input frame intervals, relative to the key frame F(i) at t = 0. The four inputs
F(i-1), F(i), F(i+1), F(i+2) sit at t = -1, 0, 1, 2; each is the mean of ``m`` sub-frames spread
over an exposure window centred on its time, ``m = round(exposure * subframes_per_interval)``
(exposure 0: one sub-frame, a sharp input). The targets are the sharp frames at t = 0 (key) and at
t = j/K, j = 1..K-1 (or at any requested times).

Everything is batched torch and runs on the training device. Random numbers come from the caller's
``torch.Generator`` (drawn on the generator's device), so a seed reproduces a batch exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F

from vidrestore.errors import UsageError
from vidrestore.synth.textures import TextureBank, random_textures

INPUT_TIMES = (-1.0, 0.0, 1.0, 2.0)
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # spreads validation motion levels evenly over [0, 1)


@dataclass(frozen=True)
class SceneConfig:
    height: int
    width: int
    factor: int = 8
    subframes_per_interval: int = 8  # >= factor and a multiple of it; sub-frames per input interval
    exposure: float | tuple[float, float] = (0.0, 1.0)  # fraction of the frame interval (fixed or range)
    sharp_prob: float = 0.15  # with a range exposure: probability of a sharp input (exposure 0)
    max_speed: float = 24.0  # px per input frame interval at reference_size
    reference_size: int = 128  # max_speed scales with min(height, width) / reference_size
    static_prob: float = 0.08  # probability of a scene with no motion at all
    static_camera_prob: float = 0.3  # probability of a still background (objects may move)
    speed_power: float = 2.0  # motion level = U^power: >1 favours small motion
    min_objects: int = 1
    max_objects: int = 4
    real_texture_fraction: float = 0.7  # when a texture bank is given
    noise: float = 0.01  # max std of Gaussian noise added to inputs (0: none)
    noise_prob: float = 0.5
    brightness: float = 0.15  # max relative gain change / gamma exponent change (0: none)
    quantize: bool = True  # round inputs to 8-bit levels like decoded video
    max_subframe_gap: float | None = 1.5  # px; fast samples get 2-4x more sub-frames (None: fixed count)

    def __post_init__(self) -> None:
        if self.height < 8 or self.width < 8:
            raise UsageError(f"scene size {self.width}x{self.height}: at least 8x8")
        if self.factor < 1:
            raise UsageError(f"scene factor {self.factor}: must be >= 1")
        s = self.subframes_per_interval
        if s < 8 or s < self.factor or s % self.factor:
            raise UsageError(
                f"subframes_per_interval {s}: must be >= 8, >= factor ({self.factor}) and a multiple of it"
            )
        lo, hi = self.exposure_range
        if not (0.0 <= lo <= hi <= 1.0):
            raise UsageError(f"exposure {self.exposure}: must lie in [0, 1]")
        if not (0 <= self.min_objects <= self.max_objects):
            raise UsageError(f"objects {self.min_objects}..{self.max_objects}: need 0 <= min <= max")
        if self.max_speed < 0:
            raise UsageError("max_speed must be >= 0")
        if not (0.0 <= self.sharp_prob <= 1.0):
            raise UsageError(f"sharp_prob {self.sharp_prob}: must lie in [0, 1]")
        if not self.noise >= 0:
            raise UsageError(f"noise {self.noise}: must be >= 0")

    @property
    def exposure_range(self) -> tuple[float, float]:
        if isinstance(self.exposure, (tuple, list)):
            return float(self.exposure[0]), float(self.exposure[1])
        return float(self.exposure), float(self.exposure)

    @property
    def speed_px(self) -> float:
        """Maximal speed in pixels per interval at this config's size."""
        return self.max_speed * min(self.height, self.width) / self.reference_size


@dataclass
class Sample:
    """One batch of training/validation data. Images in [0,1]."""

    inputs: torch.Tensor  # [B,4,3,H,W] (blurry) F(i-1), F(i), F(i+1), F(i+2)
    key: torch.Tensor  # [B,3,H,W] sharp F(i)
    inter: torch.Tensor  # [B,T,3,H,W] sharp frames at i + times
    times: torch.Tensor  # [T] in (0,1)
    # [B,T,2,2,H,W] or None: exact backward flows (px, x then y) from each target time to t = 0 (side 0)
    # and to t = 1 (side 1): the frame at t, at pixel p, shows what F(i) shows at p + flows[:, :, 0](p)
    flows: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> "Sample":
        return Sample(*(None if (v := getattr(self, f.name)) is None else v.to(device) for f in fields(self)))

    @property
    def batch(self) -> int:
        return int(self.inputs.shape[0])


@dataclass
class Motion:
    """Quadratic-in-time pose of L layers for B samples: centre (px), angle (rad), log-scale."""

    pos: torch.Tensor  # [B,L,2] centre at t=0, screen px relative to the image centre (x, y)
    vel: torch.Tensor  # [B,L,2] px per interval
    acc: torch.Tensor  # [B,L,2] px per interval^2
    ang: torch.Tensor  # [B,L]
    ang_vel: torch.Tensor  # [B,L]
    ang_acc: torch.Tensor  # [B,L]
    logs: torch.Tensor  # [B,L]
    logs_vel: torch.Tensor  # [B,L]
    logs_acc: torch.Tensor  # [B,L]

    def at(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pose at times t [B,N]: centre [B,L,N,2], angle [B,L,N], log-scale [B,L,N]."""
        t = t[:, None, :]  # [B,1,N]
        half_t2 = 0.5 * t * t
        pos = (self.pos[:, :, None, :] + self.vel[:, :, None, :] * t[..., None]
               + self.acc[:, :, None, :] * half_t2[..., None])
        ang = self.ang[..., None] + self.ang_vel[..., None] * t + self.ang_acc[..., None] * half_t2
        logs = self.logs[..., None] + self.logs_vel[..., None] * t + self.logs_acc[..., None] * half_t2
        return pos, ang, logs

    def zero_motion(self) -> "Motion":
        z = torch.zeros_like
        return replace(self, vel=z(self.vel), acc=z(self.acc), ang_vel=z(self.ang_vel), ang_acc=z(self.ang_acc),
                       logs_vel=z(self.logs_vel), logs_acc=z(self.logs_acc))


@dataclass
class Scene:
    """Everything needed to render a batch of scenes at any time."""

    height: int
    width: int
    background: torch.Tensor  # [B,3,Hb,Wb] texture, centred on the view at identity pose
    objects: torch.Tensor  # [B,L,4,To,To] object RGB + soft alpha (0 for absent objects)
    background_motion: Motion  # L = 1
    object_motion: Motion  # L objects
    active: torch.Tensor  # [B,L] bool: object present
    extent: torch.Tensor | None = None  # [B,L] px: farthest reach of each object's outline from its centre

    @property
    def batch(self) -> int:
        return int(self.background.shape[0])


def _u(shape, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(tuple(shape), generator=g, device=g.device).to(device)


def _sym(shape, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return 2.0 * _u(shape, g, device) - 1.0


def _unit(shape, g: torch.Generator, device: torch.device) -> torch.Tensor:
    """Random unit vectors [...,2]."""
    a = _u(shape, g, device) * (2 * math.pi)
    return torch.stack([torch.cos(a), torch.sin(a)], dim=-1)


def background_margin(cfg: SceneConfig) -> int:
    """Extra texture around the view so that camera motion over t in [-1.5, 2.5] stays inside it."""
    return int(math.ceil(2.7 * cfg.speed_px + 0.2 * max(cfg.height, cfg.width))) + 2


def sample_scene(cfg: SceneConfig, batch: int, generator: torch.Generator, device: torch.device | str,
                 textures: TextureBank | None = None, levels: torch.Tensor | None = None) -> Scene:
    """Draw ``batch`` random scenes. ``levels`` [B] in [0,1] fixes each sample's motion level."""
    device = torch.device(device)
    g = generator
    B, H, W = batch, cfg.height, cfg.width
    L = cfg.max_objects
    vmax = cfg.speed_px
    view_r = 0.5 * math.hypot(H, W)

    # Motion level per sample: speed in px/interval; some samples fully static.
    if levels is None:
        lv = _u((B,), g, device) ** cfg.speed_power
        static = _u((B,), g, device) < cfg.static_prob
        lv = torch.where(static, torch.zeros_like(lv), lv)
    else:
        lv = levels.to(device=device, dtype=torch.float32)
    speed = (vmax * lv)[:, None]  # [B,1]

    # Background (camera): mostly translation, a little rotation and zoom, small acceleration.
    still_cam = (_u((B, 1), g, device) < cfg.static_camera_prob).float()
    cam_speed = speed * (0.3 + 0.7 * _u((B, 1), g, device)) * (1 - still_cam)
    vel = _unit((B, 1), g, device) * cam_speed[..., None]
    acc = _sym((B, 1, 2), g, device) * 0.15 * cam_speed[..., None]
    ang_vel = _sym((B, 1), g, device) * 0.25 * cam_speed / view_r
    logs_vel = _sym((B, 1), g, device) * 0.2 * cam_speed / view_r
    zeros1 = torch.zeros((B, 1), device=device)
    bg_motion = Motion(
        pos=torch.zeros((B, 1, 2), device=device), vel=vel, acc=acc,
        ang=zeros1, ang_vel=ang_vel, ang_acc=_sym((B, 1), g, device) * 0.1 * ang_vel.abs(),
        logs=zeros1.clone(), logs_vel=logs_vel, logs_acc=_sym((B, 1), g, device) * 0.1 * logs_vel.abs(),
    )

    # Foreground objects.
    base = min(H, W)
    radius = base * (0.08 + 0.22 * _u((B, L), g, device))
    obj_speed = speed * (0.2 + 0.8 * _u((B, L), g, device))
    # Objects start inside the view (a little beyond its edges is fine: they may enter or leave).
    pos = torch.stack([_sym((B, L), g, device) * 0.55 * W, _sym((B, L), g, device) * 0.55 * H], dim=-1)
    ovel = _unit((B, L), g, device) * obj_speed[..., None]
    oacc = _sym((B, L, 2), g, device) * 0.2 * obj_speed[..., None]
    o_ang_vel = _sym((B, L), g, device) * 0.5 * obj_speed / radius
    o_logs_vel = (_sym((B, L), g, device) * 0.2 * obj_speed / radius).clamp(-0.15, 0.15)
    obj_motion = Motion(
        pos=pos, vel=ovel, acc=oacc,
        ang=_u((B, L), g, device) * (2 * math.pi), ang_vel=o_ang_vel,
        ang_acc=_sym((B, L), g, device) * 0.1 * o_ang_vel.abs(),
        logs=_sym((B, L), g, device) * 0.2, logs_vel=o_logs_vel,
        logs_acc=_sym((B, L), g, device) * 0.1 * o_logs_vel.abs(),
    )

    count = torch.randint(cfg.min_objects, cfg.max_objects + 1, (B,), generator=g, device=g.device).to(device)
    active = torch.arange(L, device=device)[None, :] < count[:, None]

    aspect = torch.exp(_sym((B, L), g, device) * math.log(2.0))
    harmonics = torch.stack([_sym((B, L, 3), g, device) * 0.12, _u((B, L, 3), g, device) * 2 * math.pi], dim=-1)
    polygon = _u((B, L), g, device) < 0.35
    sides = torch.randint(3, 8, (B, L), generator=g, device=g.device).to(device)
    softness = 0.3 + 0.9 * _u((B, L), g, device)

    m = background_margin(cfg)
    bg = random_textures(B, H + 2 * m, W + 2 * m, g, device, textures, cfg.real_texture_fraction)
    to = _object_texture_size(cfg)
    rgb = random_textures(B * L, to, to, g, device, textures, cfg.real_texture_fraction).view(B, L, 3, to, to)
    alpha = _shape_alpha(to, radius, aspect, harmonics, polygon, sides, softness) * active[..., None, None, None]
    obj = torch.cat([rgb, alpha], dim=2)
    extent = radius * 1.37 * torch.sqrt(torch.maximum(aspect, 1.0 / aspect))
    return Scene(H, W, bg, obj, bg_motion, obj_motion, active, extent)


def _object_texture_size(cfg: SceneConfig) -> int:
    """Object textures hold the largest shape: radius 0.3*min side, +36% harmonics, sqrt(2) aspect."""
    side = int(math.ceil(2 * 0.3 * 1.37 * math.sqrt(2.0) * min(cfg.height, cfg.width))) + 6
    return side + (side % 2 != cfg.width % 2)


def _shape_alpha(
    size: int,
    radius: torch.Tensor,
    aspect: torch.Tensor,
    harmonics: torch.Tensor,
    polygon: torch.Tensor,
    sides: torch.Tensor,
    softness: torch.Tensor,
) -> torch.Tensor:
    """Soft coverage [B,L,1,size,size] of each object's outline in its own (texture) coordinates:
    a smooth blob (radius modulated by cos(k*phi), k = 2..4) or a regular polygon, stretched by aspect."""
    device = radius.device
    c = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    sq = torch.sqrt(aspect)[..., None, None]
    ux, uy = xx / sq, yy * sq  # [B,L,S,S]
    rho = torch.sqrt(ux * ux + uy * uy + 1e-12)
    phi = torch.atan2(uy, ux)
    blob = torch.ones_like(phi)
    for j, order in enumerate((2, 3, 4)):
        amp = harmonics[..., j, 0][..., None, None]
        ph = harmonics[..., j, 1][..., None, None]
        blob = blob + amp * torch.cos(order * phi + ph)
    n = sides.to(torch.float32)[..., None, None]
    sector = 2 * math.pi / n
    poly = torch.cos(math.pi / n) / torch.cos(torch.remainder(phi, sector) - sector / 2)
    shape = torch.where(polygon[..., None, None], poly, blob)
    r = radius[..., None, None] * shape
    a = torch.sigmoid((r - rho) / softness[..., None, None])
    # Zero on the texture border, so that sampling outside the texture gives no coverage.
    a[..., :1, :] = 0
    a[..., -1:, :] = 0
    a[..., :, :1] = 0
    a[..., :, -1:] = 0
    return a[:, :, None]


def _screen_coords(height: int, width: int, device: torch.device) -> torch.Tensor:
    """Homogeneous normalized screen coordinates (align_corners=False) of every pixel: [H*W, 3]."""
    xs = (torch.arange(width, device=device, dtype=torch.float32) * 2 + 1) / width - 1
    ys = (torch.arange(height, device=device, dtype=torch.float32) * 2 + 1) / height - 1
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy, torch.ones_like(xx)], dim=-1).view(-1, 3)


def _warp_layer(tex: torch.Tensor, pos: torch.Tensor, ang: torch.Tensor, logs: torch.Tensor,
                screen: torch.Tensor, height: int, width: int, padding: str) -> torch.Tensor:
    """Sample one scene's layer texture at N times: tex [C,Ht,Wt]; pose pos [N,2], ang, logs [N].

    A texture point u (px from the texture centre) appears on screen at pos + exp(logs) R(ang) u, so the
    screen pixel x samples u = exp(-logs) R(-ang) (x - pos). Returns [C,N,H,W].
    """
    C, ht, wt = tex.shape
    N = pos.shape[0]
    c, s = torch.cos(ang), torch.sin(ang)
    k = torch.exp(-logs)
    gx, gy = 2.0 / wt, 2.0 / ht  # texture px -> normalized texture coordinates
    sx, sy = width / 2.0, height / 2.0  # normalized screen coordinates -> px
    theta = torch.stack([
        torch.stack([k * gx * c * sx, k * gx * s * sy, -k * gx * (c * pos[:, 0] + s * pos[:, 1])], dim=-1),
        torch.stack([-k * gy * s * sx, k * gy * c * sy, -k * gy * (-s * pos[:, 0] + c * pos[:, 1])], dim=-1),
    ], dim=-2)  # [N,2,3]
    # One [H*W,3] x [3,2N] product (much faster than N tiny batched products), then [N,H*W,2].
    grid = (screen @ theta.permute(2, 0, 1).reshape(3, 2 * N)).view(height, width, N, 2).permute(2, 0, 1, 3)
    out = F.grid_sample(tex[None], grid.reshape(1, N * height, width, 2), mode="bilinear", padding_mode=padding,
                        align_corners=False)
    return out.view(C, N, height, width)


def render_one(scene: Scene, b: int, times: torch.Tensor) -> torch.Tensor:
    """Sharp frames of scene ``b`` at times [N] -> [N,3,H,W]."""
    device = scene.background.device
    times = times.to(device=device, dtype=torch.float32)[None]
    H, W = scene.height, scene.width
    screen = _screen_coords(H, W, device)
    pos, ang, logs = _one_motion(scene.background_motion, b).at(times)
    img = _warp_layer(scene.background[b], pos[0, 0], ang[0, 0], logs[0, 0], screen, H, W, "reflection")
    active = scene.active[b].tolist()
    pos, ang, logs = _one_motion(scene.object_motion, b).at(times)
    for k, on in enumerate(active):
        if on:
            rgba = _warp_layer(scene.objects[b, k], pos[0, k], ang[0, k], logs[0, k], screen, H, W, "zeros")
            img = torch.lerp(img, rgba[:3], rgba[3:])
    return img.transpose(0, 1)


def render_flow_one(scene: Scene, b: int, times: torch.Tensor, targets: Sequence[float]) -> torch.Tensor:
    """Exact backward flows of scene ``b`` from each of ``times`` [N] to each of ``targets`` [M]:
    [N,M,2,H,W] px.

    At pixel p at time t the visible surface point is that of the topmost layer whose coverage there
    is at least 1/2 (else the background); the flow is where that point is at the target time, minus p.
    Points hidden at the target time keep their true motion (warping cannot recover them; the blend must).
    """
    device = scene.background.device
    times = times.to(device=device, dtype=torch.float32)
    n, m = times.numel(), len(targets)
    H, W = scene.height, scene.width
    ys = torch.arange(H, device=device, dtype=torch.float32) + 0.5 - H / 2
    xs = torch.arange(W, device=device, dtype=torch.float32) + 0.5 - W / 2
    py, px = torch.meshgrid(ys, xs, indexing="ij")
    p = torch.stack((px, py))[None]  # [1,2,H,W] px from the image centre
    tt = torch.cat((times, times.new_tensor([float(t) for t in targets])))[None]  # [1,N+M]

    def rot(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # a [K], v [K,2,H,W]: R(a) v
        c, s_ = torch.cos(a).view(-1, 1, 1), torch.sin(a).view(-1, 1, 1)
        return torch.stack((c * v[:, 0] - s_ * v[:, 1], s_ * v[:, 0] + c * v[:, 1]), dim=1)

    def layer_flow(pos: torch.Tensor, ang: torch.Tensor, logs: torch.Tensor) -> torch.Tensor:
        """One layer's pose at the N+M times (pos [N+M,2], ang, logs [N+M]) -> flows [N,M,2,H,W]."""
        # texture point seen at p at time t: u = exp(-logs_t) R(-ang_t) (p - pos_t)
        u = rot(-ang[:n], p - pos[:n].view(n, 2, 1, 1)) * torch.exp(-logs[:n]).view(n, 1, 1, 1)
        u = u.repeat_interleave(m, dim=0)  # [N*M,2,H,W], target-major within each time
        a, ls, ps = ang[n:].repeat(n), logs[n:].repeat(n), pos[n:].repeat(n, 1)
        q = rot(a, u) * torch.exp(ls).view(-1, 1, 1, 1) + ps.view(-1, 2, 1, 1)
        return (q - p).view(n, m, 2, H, W)

    bg_pos, bg_ang, bg_logs = _one_motion(scene.background_motion, b).at(tt)
    flow = layer_flow(bg_pos[0, 0], bg_ang[0, 0], bg_logs[0, 0])
    pos, ang, logs = _one_motion(scene.object_motion, b).at(tt)  # [1,L,N+M,2], [1,L,N+M]
    screen = _screen_coords(H, W, device)
    for k, on in enumerate(scene.active[b].tolist()):
        if on:
            alpha = _warp_layer(scene.objects[b, k, 3:], pos[0, k, :n], ang[0, k, :n], logs[0, k, :n], screen, H, W,
                                "zeros")  # [1,N,H,W] coverage at each time
            visible = (alpha.transpose(0, 1) >= 0.5)[:, None]  # [N,1,1,H,W]
            flow = torch.where(visible, layer_flow(pos[0, k], ang[0, k], logs[0, k]), flow)
    return flow


def _one_motion(motion: Motion, b: int) -> Motion:
    return Motion(*(getattr(motion, f.name)[b : b + 1] for f in fields(motion)))


def render(scene: Scene, times: torch.Tensor) -> torch.Tensor:
    """Sharp frames of every scene at times [B,N] (or [N]) -> [B,N,3,H,W]."""
    B = scene.batch
    if times.dim() == 1:
        times = times[None].expand(B, -1)
    return torch.stack([render_one(scene, b, times[b]) for b in range(B)])


def sample_exposure(cfg: SceneConfig, batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    lo, hi = cfg.exposure_range
    e = lo + (hi - lo) * _u((batch,), generator, device)
    if hi > lo and cfg.sharp_prob > 0:
        sharp = _u((batch,), generator, device) < cfg.sharp_prob
        e = torch.where(sharp, torch.zeros_like(e), e)
    return e


def default_times(factor: int, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.arange(1, factor, device=device, dtype=torch.float32) / factor


def input_times(exposure: float, subframes: int) -> list[torch.Tensor]:
    """Sub-frame times of each of the 4 inputs for one sample: m = max(1, round(exposure * subframes))
    instants spaced 1/subframes apart and centred on the input's time."""
    m = max(1, int(round(float(exposure) * subframes)))
    offsets = (torch.arange(m, dtype=torch.float32) - (m - 1) / 2) / subframes
    return [t + offsets for t in INPUT_TIMES]


def pixel_speed_bound(scene: Scene) -> torch.Tensor:
    """An upper bound of how fast any visible point moves, px per interval over t in [-1.5, 2.5]: [B]."""
    T = 2.5

    def bound(m: Motion, extent: torch.Tensor) -> torch.Tensor:
        lin = m.vel.norm(dim=-1) + T * m.acc.norm(dim=-1)
        rot = m.ang_vel.abs() + T * m.ang_acc.abs()
        zoom = m.logs_vel.abs() + T * m.logs_acc.abs()
        scale = torch.exp(m.logs.abs() + T * zoom)
        return lin + (rot + zoom) * extent * scale

    bg = scene.background_motion
    view = 0.5 * math.hypot(scene.height, scene.width)
    bg_extent = view + T * bg.vel.norm(dim=-1)
    obj_extent = scene.extent
    if obj_extent is None:
        obj_extent = torch.full_like(scene.object_motion.ang, scene.objects.shape[-1] * 0.5 * math.sqrt(2.0))
    speeds = bound(bg, bg_extent)[:, 0]
    if scene.objects.shape[1]:
        obj = bound(scene.object_motion, obj_extent) * scene.active.to(obj_extent.dtype)
        speeds = torch.maximum(speeds, obj.amax(dim=1))
    return speeds


def subframes_for(cfg: SceneConfig, exposure: float, speed: float) -> int:
    """Sub-frames per interval for one sample: ``subframes_per_interval``, times 2-4 when the blur
    trail (speed * exposure) would otherwise be sampled more than ``max_subframe_gap`` px apart."""
    s = cfg.subframes_per_interval
    if cfg.max_subframe_gap is None or exposure <= 0:
        return s
    m = max(1, round(exposure * s))
    gap = speed * exposure / m
    return s * int(min(4, max(1, math.ceil(gap / cfg.max_subframe_gap))))


def render_scene_sample(
    cfg: SceneConfig,
    scene: Scene,
    exposure: torch.Tensor,
    times: torch.Tensor,
    with_flows: bool = False,
) -> Sample:
    """Render inputs (each the mean of its sub-frames) and sharp targets of given scenes (and, with
    ``with_flows``, the exact flows from every target time to t = 0 and t = 1).

    Samples are rendered one by one so that each renders only the sub-frames its own exposure needs.
    """
    device = scene.background.device
    times = times.to(device=device, dtype=torch.float32)
    inputs, key, inter = [], [], []
    speeds = pixel_speed_bound(scene).tolist()
    for b, e in enumerate(exposure.tolist()):
        sub = input_times(e, subframes_for(cfg, e, speeds[b]))
        m = sub[0].numel()
        t_all = torch.cat(sub + [torch.zeros(1), times.cpu()]).to(device)
        frames = render_one(scene, b, t_all)
        inputs.append(frames[: 4 * m].view(4, m, *frames.shape[1:]).mean(dim=1))
        key.append(frames[4 * m])
        inter.append(frames[4 * m + 1 :])
    flows = None
    if with_flows:
        flows = torch.stack([render_flow_one(scene, b, times, (0.0, 1.0)) for b in range(scene.batch)])
    return Sample(inputs=torch.stack(inputs), key=torch.stack(key), inter=torch.stack(inter), times=times, flows=flows)


def _photometric(cfg: SceneConfig, sample: Sample, g: torch.Generator) -> Sample:
    """Per-sample gain/gamma on everything, then noise and 8-bit quantization on the inputs."""
    device = sample.inputs.device
    B = sample.batch
    inputs, key, inter = sample.inputs, sample.key, sample.inter
    if cfg.brightness > 0:
        gain = (1 + cfg.brightness * _sym((B,), g, device)).view(B, 1, 1, 1)
        gamma = torch.exp(cfg.brightness * _sym((B,), g, device)).view(B, 1, 1, 1)

        def adjust(x: torch.Tensor) -> torch.Tensor:
            shape = x.shape
            y = x.reshape(B, -1, *shape[-2:])
            return (y.clamp(0, 1) ** gamma * gain).clamp(0, 1).reshape(shape)

        inputs, key, inter = adjust(inputs), adjust(key), adjust(inter)
    if cfg.noise > 0 and cfg.noise_prob > 0:
        sigma = cfg.noise * _u((B,), g, device) * (_u((B,), g, device) < cfg.noise_prob).float()
        noise = torch.randn(tuple(inputs.shape), generator=g, device=g.device).to(device)
        inputs = (inputs + sigma.view(B, 1, 1, 1, 1) * noise).clamp(0, 1)
    if cfg.quantize:
        inputs = torch.round(inputs.clamp(0, 1) * 255) / 255
    return Sample(inputs=inputs, key=key, inter=inter, times=sample.times, flows=sample.flows)


def render_batch(
    cfg: SceneConfig,
    batch: int,
    generator: torch.Generator,
    device: torch.device | str,
    textures: TextureBank | None = None,
    *,
    times: torch.Tensor | None = None,
    levels: torch.Tensor | None = None,
    with_flows: bool = False,
) -> Sample:
    """A batch of random synthetic samples rendered on ``device`` (``with_flows``: with exact flows).

    ``times`` [T] in (0,1) overrides the default target times j/factor (j = 1..factor-1);
    ``levels`` [B] in [0,1] fixes each sample's motion level (fraction of ``max_speed``).
    """
    device = torch.device(device)
    scene = sample_scene(cfg, batch, generator, device, textures, levels)
    exposure = sample_exposure(cfg, batch, generator, device)
    if times is None:
        times = default_times(cfg.factor, device)
    sample = render_scene_sample(cfg, scene, exposure, times, with_flows)
    return _photometric(cfg, sample, generator)


def validation_config(height: int = 128, width: int = 128, factor: int = 8, exposure: float = 7 / 8) -> SceneConfig:
    sub = factor * max(1, math.ceil(8 / factor))
    return SceneConfig(
        height=height, width=width, factor=factor, subframes_per_interval=sub, exposure=exposure,
        sharp_prob=0.0, static_prob=0.0, noise=0.0, brightness=0.0, quantize=True, max_subframe_gap=None,
    )


def validation_set(
    seed: int = 1234,
    count: int = 16,
    height: int = 128,
    width: int = 128,
    factor: int = 8,
    exposure: float = 7 / 8,
) -> list[Sample]:
    """A fixed list of single-sample batches, identical on every machine (rendered on the CPU, procedural
    textures only). Motion levels are spread evenly over [0, max_speed); sample k depends only on
    (seed, k), not on ``count``."""
    cfg = validation_config(height, width, factor, exposure)
    cpu = torch.device("cpu")
    out = []
    for k in range(count):
        g = torch.Generator(device="cpu")
        g.manual_seed(int(seed) * 1_000_003 + k)
        level = torch.tensor([(0.5 + k * _GOLDEN) % 1.0])
        out.append(render_batch(cfg, 1, g, cpu, None, levels=level))
    return out

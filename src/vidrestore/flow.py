"""Classical optical flow (OpenCV DIS) on HxWx3 uint8 RGB frames: the ``dis-flow`` baseline of ``vidrestore
eval``, the flow prior of the network (:mod:`vidrestore.prior`) and the synthetic blur of training use these,
and only these.

Flows are HxWx2 float32 arrays in pixels, x then y, backward: ``a(x) ~ b(x + flow(x))``.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


def dis_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """DIS (preset medium) flow from RGB frame ``a`` to ``b``: a(x) ~ b(x + flow(x)), HxWx2 float32."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    ga = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    gb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    return dis.calc(ga, gb, None)


def backward_warp(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """out(x) = img(x + flow(x)) with bilinear sampling and replicated borders (float32 result)."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x = xs + flow[..., 0]
    map_y = ys + flow[..., 1]
    return cv2.remap(
        img.astype(np.float32), map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def round_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def dis_interpolate(a: np.ndarray, b: np.ndarray, times: Sequence[float]) -> list[np.ndarray]:
    """Frames at ``times`` in (0, 1) between ``a`` and ``b``: DIS flow both ways; each frame backward-warped
    to time t with its flow scaled by t (from ``a``) or 1 - t (from ``b``), the two blended with weights
    1 - t and t, rounded to uint8."""
    f_ab = dis_flow(a, b)  # a(x) ~ b(x + f_ab(x)): motion of the pixel at x from time 0 to 1
    f_ba = dis_flow(b, a)  # b(x) ~ a(x + f_ba(x)): motion of the pixel at x from time 1 to 0
    out = []
    for t in times:
        from_a = backward_warp(a, t * f_ba)  # frame t at x ~ a(x + t * f_ba(x))
        from_b = backward_warp(b, (1.0 - t) * f_ab)  # frame t at x ~ b(x + (1-t) * f_ab(x))
        out.append(round_u8((1.0 - t) * from_a + t * from_b))
    return out

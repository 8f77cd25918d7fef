"""OpenCV's edge and distance steps, ported for spatter's water (extra.py): equalizeHist, Canny, the 5x5 chamfer
distanceTransform and the 3x3 box blur, on integer values held in float, to cv2's integer arithmetic."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robustcollapse.corruptions.filters import _reflect101_index


def equalize_hist(x: torch.Tensor) -> torch.Tensor:
    """cv2.equalizeHist per image on integer values 0..255 held in float (N, 1, H, W): lut[v] =
    round((cdf[v] − count of the lowest value) · 255/(pixels − that count)) in float32; one value only: kept."""
    n = len(x)
    vals = x.reshape(n, -1).long().clamp(0, 255)
    hist = torch.zeros(n, 256, device=x.device).scatter_add_(1, vals, torch.ones_like(vals, dtype=torch.float32))
    cdf = hist.cumsum(1)
    lowest = (hist > 0).float().argmax(1, keepdim=True)
    first = torch.gather(hist, 1, lowest)
    scale = 255.0 / (vals.shape[1] - first).clamp_min(1)
    lut = torch.round((cdf - first) * scale).clamp(0, 255)
    lut = torch.where(first == vals.shape[1], lowest.float().expand_as(lut), lut)
    return torch.gather(lut, 1, vals).reshape(x.shape)


TG22 = 13573  # cv2 Canny's tan(22.5°)·2^15, rounded


def canny(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """cv2.Canny(x, low, high) on integer images 0..255 held in float (N, 1, H, W), as a 0/1 float mask.

    3x3 Sobel (edges replicated), L1 magnitude |gx| + |gy|; non-maximum suppression along the gradient direction
    quantised as cv2 does (integer tan 22.5° test; the neighbour behind must be exceeded, the one ahead matched,
    both exceeded on diagonals; zero magnitude outside the image); hysteresis: pixels above `high` grow through
    8-connected candidates above `low`."""
    h, w = x.shape[-2:]
    p = F.pad(x, (1, 1, 1, 1), mode="replicate").long()
    smooth_rows = p[..., :-2, :] + 2 * p[..., 1:-1, :] + p[..., 2:, :]  # Sobel, separable: [1 2 1] x [-1 0 1]
    smooth_cols = p[..., :, :-2] + 2 * p[..., :, 1:-1] + p[..., :, 2:]
    gx = smooth_rows[..., :, 2:] - smooth_rows[..., :, :-2]
    gy = smooth_cols[..., 2:, :] - smooth_cols[..., :-2, :]
    mag = gx.abs() + gy.abs()
    m = F.pad(mag, (1, 1, 1, 1))

    def at(dy: int, dx: int) -> torch.Tensor:
        return m[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    ax, ay = gx.abs(), gy.abs() << 15
    tg22x = ax * TG22
    horizontal = ay < tg22x
    vertical = ~horizontal & (ay > tg22x + (ax << 16))
    diagonal = ~horizontal & ~vertical
    same_sign = (gx < 0) == (gy < 0)
    peak = (
        (horizontal & (mag > at(0, -1)) & (mag >= at(0, 1)))
        | (vertical & (mag > at(-1, 0)) & (mag >= at(1, 0)))
        | (diagonal & same_sign & (mag > at(-1, -1)) & (mag > at(1, 1)))
        | (diagonal & ~same_sign & (mag > at(-1, 1)) & (mag > at(1, -1)))
    )
    candidate = (peak & (mag > low)).float()
    edges = candidate * (mag > high).float()
    while True:
        grown = F.max_pool2d(edges, 3, stride=1, padding=1) * candidate
        if torch.equal(grown, edges):
            return edges
        edges = grown


CHAMFER_MOVES = tuple(
    (dy, dx, cost)
    for dy in range(-2, 3)
    for dx in range(-2, 3)
    for cost in [{1: 1.0, 2: 1.4, 5: 2.1969}.get(dy * dy + dx * dx)]
    if cost is not None
)  # cv2's 5x5 DIST_L2 mask: orthogonal, diagonal and knight's-move steps


def distance_to_edges(edges: torch.Tensor, cap: float) -> torch.Tensor:
    """cv2.distanceTransform(255 − edges, DIST_L2, 5) truncated at `cap` (cv2.threshold TRUNC), float32.

    For mask size 5 cv2 computes the chamfer distance with steps 1 (orthogonal), 1.4 (diagonal) and 2.1969
    (knight's move), not the exact Euclidean one; ours relaxes the same steps in float32 (min-plus; at most `cap`
    rounds, each step costing at least 1). Equal to OpenCV 5's to float round-off (older releases used 16-bit fixed
    point, at most 3e-5 apart)."""
    h, w = edges.shape[-2:]
    d = torch.where(edges > 0, 0.0, cap).float()
    for _ in range(int(cap) + 1):
        padded = F.pad(d, (2, 2, 2, 2), value=cap)
        best = d
        for dy, dx, cost in CHAMFER_MOVES:
            best = torch.minimum(best, padded[..., 2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w] + cost)
        best = best.clamp(max=cap)
        if torch.equal(best, d):
            break
        d = best
    return d


def _box3(x: torch.Tensor) -> torch.Tensor:
    """3x3 sum per image, cv2's reflect-101 border (exact for integer-valued tensors of any dtype)."""
    h, w = x.shape[-2:]
    rows = _reflect101_index(torch.arange(-1, h + 1, device=x.device), h)
    cols = _reflect101_index(torch.arange(-1, w + 1, device=x.device), w)
    p = x[..., rows, :][..., cols]
    return sum(p[..., i : i + h, j : j + w] for i in range(3) for j in range(3))

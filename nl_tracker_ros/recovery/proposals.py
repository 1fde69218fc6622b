"""Top-k box proposals and a confidence from the corner heatmaps of the joint model.

The corner head gives two independent softmax maps, top-left and bottom-right (B, S, S). Its own
box is their soft-argmax, which lands between two modes when two objects compete. Here:

1. Peaks: local maxima of each map (max-pool NMS over ``peak_window`` cells), the ``peaks``
   strongest. Each peak's position is the soft-argmax over its *basin*: the cells nearer to it
   than to any other peak holding ``min_peak_mass``, in the head's convention (cell i -> i / S,
   as STARK's corner predictor). A unimodal map thus gives exactly the model's own box back.
   (A soft-argmax inside the peak's window alone shrank boxes: a corner's probability leans
   into the object, so its mode lies inside the box while its tail reaches the true corner.)
2. Peak score = probability *mass* inside the window rather than the raw peak value: the mass
   is high only when the map is both peaked and concentrated (sharp), and unlike the peak value
   it does not halve when the corner falls between two cells.
3. Boxes: every (tl, br) pair with br right of and below tl by ``min_size``. Pair score =
   sqrt(m_tl * m_br) * (min(m_tl, m_br) / max(m_tl, m_br)) ** pair_consistency. Both corners
   of one object draw from the same evidence and carry similar mass; a pair mixing a strong and a
   weak mode (a box spanning two objects) is penalised by the ratio.
4. Non-maximum suppression at ``nms_iou``; the ``top_k`` best remain.

``heatmap_confidence`` is the score of the best proposal (0..1); ``sharpness`` (1 - normalised
entropy) is offered as a whole-map diagnostic.
"""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torchvision.ops import nms

from nl_tracker_ros.errors import InputError


@dataclasses.dataclass(frozen=True)
class Proposals:
    """Ranked boxes, normalised [0, 1] to the heatmaps' input image."""

    boxes_cxcywh: torch.Tensor   # (B, K, 4)
    scores: torch.Tensor         # (B, K), 0..1, descending; 0 where not valid
    valid: torch.Tensor          # (B, K) bool


def sharpness(heatmap: torch.Tensor) -> torch.Tensor:
    """Return 1 - entropy / log(S*S) of probability maps (B, S, S): 1 = one cell, 0 = uniform."""
    p = heatmap.flatten(1).clamp_min(0)
    p = p / p.sum(1, keepdim=True).clamp_min(1e-12)
    ent = -(p * p.clamp_min(1e-12).log()).sum(1)
    return 1.0 - ent / math.log(p.shape[1])


def corner_peaks(heatmap: torch.Tensor, count: int, window: int, min_mass: float = 0.0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the ``count`` strongest local maxima of maps (B, S, S).

    Returns (xy (B, count, 2) normalised coordinates, mass in the peak's window (B, count));
    the position is the soft-argmax over the peak's basin among the peaks holding at least
    ``min_mass`` (weaker peaks, which ``corner_proposals`` never pairs, get (0, 0)). Fewer real
    peaks than ``count`` are padded with zero mass.
    """
    b, s, _ = heatmap.shape
    h = heatmap.unsqueeze(1)                                               # (B, 1, S, S)
    pad = window // 2
    pooled = F.max_pool2d(h, window, 1, pad)
    area = float(window * window)
    mass = F.avg_pool2d(h, window, 1, pad, count_include_pad=True) * area  # (B, 1, S, S)
    peak = (h >= pooled) & (h > 0)
    key = torch.where(peak, mass, torch.full_like(mass, -1.0)).flatten(1)  # (B, S*S)
    k = min(count, s * s)
    top, idx = key.topk(k, dim=1)
    m = mass.flatten(1).gather(1, idx).clamp(0, 1)
    m = torch.where(top < 0, torch.zeros_like(m), m)
    # basins: every cell goes to the nearest peak that holds enough mass (the strongest peak
    # always counts, so a map with one weak peak still has a basin)
    grid = torch.arange(s, dtype=h.dtype, device=h.device)
    cells = torch.stack(torch.meshgrid(grid, grid, indexing='xy'), -1).view(1, 1, s * s, 2)
    centre = torch.stack([idx % s, idx // s], -1).to(h.dtype).unsqueeze(2)  # (B, k, 1, 2)
    d2 = ((cells - centre) ** 2).sum(-1)                                   # (B, k, S*S)
    counts = (m >= min_mass) & (m > 0)
    counts[:, 0] |= m[:, 0] > 0
    d2 = torch.where(counts.unsqueeze(2), d2, torch.full_like(d2, math.inf))
    owner = d2.argmin(1, keepdim=True)                                     # (B, 1, S*S)
    member = (owner == torch.arange(k, device=h.device).view(1, k, 1)) & counts.unsqueeze(2)
    w = member * heatmap.flatten(1).unsqueeze(1)                           # (B, k, S*S)
    total = w.sum(-1, keepdim=True)
    xy = (w.unsqueeze(-1) * cells).sum(2) / total.clamp_min(1e-12) / s    # (B, k, 2)
    xy = xy * counts.unsqueeze(-1)     # a peak below min_mass has no basin and no position
    if k < count:
        xy = F.pad(xy, (0, 0, 0, count - k))
        m = F.pad(m, (0, count - k))
    return xy, m


def corner_proposals(heatmap_tl: torch.Tensor, heatmap_br: torch.Tensor, top_k: int = 5,
                     peaks: int = 8, peak_window: int = 3, min_peak_mass: float = 0.02,
                     pair_consistency: float = 1.0, nms_iou: float = 0.7,
                     min_size: float = 0.02) -> Proposals:
    """Pair corner peaks into the ``top_k`` best boxes (see the module docstring)."""
    if heatmap_tl.dim() != 3 or heatmap_tl.shape != heatmap_br.shape \
            or heatmap_tl.shape[1] != heatmap_tl.shape[2]:
        raise InputError(f'corner heatmaps: expected two (B, S, S) maps, got '
                         f'{tuple(heatmap_tl.shape)} and {tuple(heatmap_br.shape)}')
    tl, m_tl = corner_peaks(heatmap_tl.float(), peaks, peak_window, min_peak_mass)  # (B, P, 2)
    br, m_br = corner_peaks(heatmap_br.float(), peaks, peak_window, min_peak_mass)
    x1, y1 = tl[..., 0].unsqueeze(2), tl[..., 1].unsqueeze(2)       # (B, P, 1)
    x2, y2 = br[..., 0].unsqueeze(1), br[..., 1].unsqueeze(1)       # (B, 1, P)
    a, b = m_tl.unsqueeze(2), m_br.unsqueeze(1)
    score = (a * b).sqrt() * (torch.minimum(a, b) / torch.maximum(a, b).clamp_min(1e-12)
                              ) ** pair_consistency                 # (B, P, P)
    ok = (x2 - x1 >= min_size) & (y2 - y1 >= min_size) & (a >= min_peak_mass) \
        & (b >= min_peak_mass)
    xyxy = torch.stack(torch.broadcast_tensors(x1, y1, x2, y2), -1).flatten(1, 2)  # (B, P*P, 4)
    score = torch.where(ok, score, torch.zeros_like(score)).flatten(1)
    ok = ok.flatten(1)
    nb = heatmap_tl.shape[0]
    boxes = heatmap_tl.new_zeros(nb, top_k, 4, dtype=torch.float32)
    scores = heatmap_tl.new_zeros(nb, top_k, dtype=torch.float32)
    valid = torch.zeros(nb, top_k, dtype=torch.bool, device=heatmap_tl.device)
    for i in range(nb):
        cand = ok[i].nonzero().squeeze(1)
        if cand.numel() == 0:
            continue
        keep = cand[nms(xyxy[i, cand], score[i, cand], nms_iou)][:top_k]
        n = keep.numel()
        box = xyxy[i, keep]
        boxes[i, :n] = torch.cat([(box[:, :2] + box[:, 2:]) / 2, box[:, 2:] - box[:, :2]], 1)
        scores[i, :n] = score[i, keep]
        valid[i, :n] = True
    return Proposals(boxes, scores, valid)

"""Target-specific retrieval (TSR): find the lost target anywhere in the frame.

Sliding windows at several scales and aspect ratios cover the frame; scales are fractions of the
frame and, when the target was seen before, multiples of its last size (a target keeps its size
over a short loss). A vision-language guided proposal selector scores them: a small transformer
encoder runs over [guided token; template tokens; word tokens], and the guided token's output
is multiplied element-wise with each window's RoI features, then global max pooling and a
linear layer give the window's logit. The mean box of the ``top_k`` windows is the global result
(only those overlapping the best window by ``agree_iou``: an addition to the paper).
The joint model's grounding proposals on the full frame are the second kind of candidate; the
switch (AdaRS) decides between them (see ``Recovery.search``).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torchvision.ops import roi_align

from nl_tracker_ros.boxes import iou_xywh
from nl_tracker_ros.errors import InputError


def sliding_windows(width: int, height: int, scales=(0.15, 0.3, 0.5), aspects=(0.5, 1.0, 2.0),
                    stride: float = 0.5, target_size: tuple[float, float] | None = None,
                    target_scales=(0.8, 1.0, 1.25), max_windows: int = 1500) -> np.ndarray:
    """Return windows (W, 4) xywh in pixels covering a ``width`` x ``height`` frame.

    Window sides are ``scale * sqrt(width * height)`` for ``scales`` and ``scale * target side``
    for ``target_scales`` when ``target_size`` (w, h) is given; each at every aspect (h / w),
    stepped by ``stride`` of the window side and clipped to the frame. If there would be more
    than ``max_windows``, the stride grows up to 1 (touching windows), then the smallest window
    sizes are dropped until they fit (one size is always kept).
    """
    if width < 1 or height < 1:
        raise InputError(f'sliding windows: expected a positive frame size, got {width}x{height}')
    sizes = []
    base = math.sqrt(width * height)
    for s in scales:
        for a in aspects:
            sizes.append((base * s / math.sqrt(a), base * s * math.sqrt(a)))
    if target_size is not None and min(target_size) > 0:
        for s in target_scales:
            sizes.append((target_size[0] * s, target_size[1] * s))
    sizes = sorted({(min(w, width), min(h, height)) for w, h in sizes if w >= 1 and h >= 1})
    step = stride
    while True:
        out = [_grid(width, height, w, h, step) for w, h in sizes]
        count = sum(len(o) for o in out)
        if count <= max_windows or (step >= 1.0 and len(sizes) <= 1):
            break
        if step >= 1.0:
            sizes.remove(min(sizes, key=lambda s: s[0] * s[1]))   # smallest windows go first
        step = min(1.0, step * 1.25)
    return np.concatenate(out, 0) if out else np.zeros((0, 4))


def _grid(width, height, w, h, step):
    def starts(total, side):
        n = max(1, int(math.ceil((total - side) / max(side * step, 1.0))) + 1)
        return np.linspace(0.0, total - side, n)
    xs, ys = np.meshgrid(starts(width, w), starts(height, h))
    n = xs.size
    return np.stack([xs.ravel(), ys.ravel(), np.full(n, w), np.full(n, h)], 1)


class GuidedSelector(nn.Module):
    """Vision-language guided proposal selector: one logit per window."""

    def __init__(self, feat_dim: int, text_dim: int, dim: int = 128, heads: int = 4,
                 layers: int = 1, roi_size: int = 4):
        super().__init__()
        self.roi_size = roi_size
        self.vis_in = nn.Conv2d(feat_dim, dim, 1)
        self.tmpl_in = nn.Linear(feat_dim, dim)
        self.txt_in = nn.Linear(text_dim, dim)
        self.guide = nn.Parameter(torch.randn(1, 1, dim) * dim ** -0.5)
        self.kind = nn.Parameter(torch.zeros(3, dim))   # guided / template / word token types
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.score = nn.Linear(dim, 1)

    def guide_vector(self, text_tokens: torch.Tensor, text_pad: torch.Tensor | None = None,
                     template_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Encode [guide; template; words] and return the guided token (B, dim)."""
        b = text_tokens.shape[0]
        parts = [self.guide.expand(b, -1, -1) + self.kind[0]]
        masks = [torch.zeros(b, 1, dtype=torch.bool, device=text_tokens.device)]
        if template_tokens is not None:
            parts.append(self.tmpl_in(template_tokens) + self.kind[1])
            masks.append(torch.zeros(b, template_tokens.shape[1], dtype=torch.bool,
                                     device=text_tokens.device))
        parts.append(self.txt_in(text_tokens) + self.kind[2])
        if text_pad is None:
            text_pad = torch.zeros(text_tokens.shape[:2], dtype=torch.bool,
                                   device=text_tokens.device)
        masks.append(text_pad.bool())
        out = self.encoder(torch.cat(parts, 1), src_key_padding_mask=torch.cat(masks, 1))
        return out[:, 0]

    def forward(self, features: torch.Tensor, windows_xyxy: torch.Tensor,
                guide: torch.Tensor) -> torch.Tensor:
        """Logits (W,) of windows (W, 4) in feature-map cells on features (1, C, H, W)."""
        if features.dim() != 4 or features.shape[0] != 1:
            raise InputError(f'selector: expected features (1, C, H, W), got '
                             f'{tuple(features.shape)}')
        rois = torch.cat([windows_xyxy.new_zeros(len(windows_xyxy), 1), windows_xyxy], 1)
        # project first (1x1 conv commutes with RoIAlign), one sample per cell: windows are
        # coarse and there are hundreds of them
        v = roi_align(self.vis_in(features), rois.to(features.dtype), self.roi_size, 1.0, 1,
                      aligned=True)                                      # (W, dim, R, R)
        z = (v * guide.view(1, -1, 1, 1)).amax((2, 3))                    # (W, dim)
        return self.score(z).squeeze(-1)


class TargetSpecificRetrieval(nn.Module):
    """Sliding windows + guided selector; ``search`` returns the averaged top windows."""

    def __init__(self, selector: GuidedSelector, scales=(0.15, 0.3, 0.5),
                 target_scales=(0.8, 1.0, 1.25), aspects=(0.5, 1.0, 2.0), stride: float = 0.5,
                 max_windows: int = 1500, top_k: int = 3, agree_iou: float = 0.3):
        super().__init__()
        self.selector = selector
        self.scales, self.target_scales = tuple(scales), tuple(target_scales)
        self.aspects, self.stride = tuple(aspects), stride
        self.max_windows, self.top_k, self.agree_iou = max_windows, top_k, agree_iou

    def search(self, features: torch.Tensor, guide: torch.Tensor, frame_size: tuple[int, int],
               region: tuple[float, float, float, float],
               target_size: tuple[float, float] | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score windows over a ``frame_size`` (w, h) frame; features (1, C, H, W) cover
        ``region`` (x0, y0, w, h) of the frame in pixels.

        Returns (mean box xywh (4,), top windows xywh (k, 4), their probabilities (k,)).
        """
        wins = sliding_windows(frame_size[0], frame_size[1], self.scales, self.aspects,
                               self.stride, target_size, self.target_scales, self.max_windows)
        x0, y0, rw, rh = region
        fh, fw = features.shape[-2:]
        cells = np.stack([(wins[:, 0] - x0) / rw * fw, (wins[:, 1] - y0) / rh * fh,
                          (wins[:, 0] + wins[:, 2] - x0) / rw * fw,
                          (wins[:, 1] + wins[:, 3] - y0) / rh * fh], 1)
        logits = self.selector(features, torch.as_tensor(cells, dtype=features.dtype,
                                                         device=features.device), guide)
        k = min(self.top_k, len(wins))
        top, idx = logits.topk(k)
        chosen = wins[idx.cpu().numpy()]
        # Average only the top windows that overlap the best one: two far-apart windows
        # (two look-alikes) would average to a box on neither.
        near = iou_xywh(chosen, chosen[:1]) >= self.agree_iou
        return chosen[near].mean(0), chosen, torch.sigmoid(top).cpu().numpy()

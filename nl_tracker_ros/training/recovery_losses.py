"""Training losses of the switch (AdaRS) and the retrieval selector (TSR).

- ``triplet_ranking_loss``: VSE++ hinge triplet ranking with online hard negatives (Faghri et
  al., 2018), region embedding vs description embedding, both directions.
- ``diversity_loss``: eq. 17 on the part attention maps and eq. 18 on the local semantic
  prototype maps (interpreted as || A A^T - I ||_F^2 on row-normalised maps: the parts and the
  prototypes should look at different places / words).
- ``foreground_loss``: eq. 20, BCE of the memory's foreground map against the cells of the RoI
  that fall inside the ground-truth box (``roi_foreground_target``).
- ``selector_samples``: the windows the selector's BCE is taken on, positives by IoU with the
  target (``training.recovery_loss`` scores only those).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def triplet_ranking_loss(region: torch.Tensor, text: torch.Tensor, margin: float = 0.2,
                         hard_negatives: bool = True) -> torch.Tensor:
    """VSE++ loss for matched pairs: row i of ``region`` (B, D) belongs to row i of ``text``.

    Inputs are unit vectors. With ``hard_negatives`` only the hardest negative of each anchor
    counts (max violation), otherwise all negatives are summed. Returns the mean over the batch.
    """
    scores = region @ text.t()                                  # (B, B)
    pos = scores.diag()
    eye = torch.eye(len(scores), dtype=torch.bool, device=scores.device)
    cost_text = (margin + scores - pos.unsqueeze(1)).clamp_min(0).masked_fill(eye, 0)
    cost_region = (margin + scores - pos.unsqueeze(0)).clamp_min(0).masked_fill(eye, 0)
    if hard_negatives:
        return (cost_text.max(1).values + cost_region.max(0).values).mean()
    return (cost_text.sum(1) + cost_region.sum(0)).mean()


def diversity_loss(attn: torch.Tensor) -> torch.Tensor:
    """|| A A^T - I ||_F^2 / P^2 of attention maps (n, P, M), averaged over n (eq. 17, 18)."""
    a = F.normalize(attn, dim=-1)
    gram = a @ a.transpose(1, 2)
    eye = torch.eye(a.shape[1], device=a.device, dtype=a.dtype)
    return ((gram - eye) ** 2).sum((1, 2)).mean() / a.shape[1] ** 2


def roi_foreground_target(boxes_cxcywh: torch.Tensor, target_cxcywh: torch.Tensor,
                          roi_size: int) -> torch.Tensor:
    """Cells (n, R*R) of each RoI ``boxes`` whose centre lies in its ``target`` box (0 or 1)."""
    t = (torch.arange(roi_size, dtype=boxes_cxcywh.dtype, device=boxes_cxcywh.device)
         + 0.5) / roi_size                                      # cell centres in 0..1
    x = boxes_cxcywh[:, :1] - boxes_cxcywh[:, 2:3] / 2 + t * boxes_cxcywh[:, 2:3]   # (n, R)
    y = boxes_cxcywh[:, 1:2] - boxes_cxcywh[:, 3:4] / 2 + t * boxes_cxcywh[:, 3:4]
    tx1 = target_cxcywh[:, :1] - target_cxcywh[:, 2:3] / 2
    ty1 = target_cxcywh[:, 1:2] - target_cxcywh[:, 3:4] / 2
    in_x = (x >= tx1) & (x <= tx1 + target_cxcywh[:, 2:3])
    in_y = (y >= ty1) & (y <= ty1 + target_cxcywh[:, 3:4])
    return (in_y.unsqueeze(2) & in_x.unsqueeze(1)).flatten(1).to(boxes_cxcywh.dtype)


def foreground_loss(fg_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 20: BCE of foreground logits (n, M) against 0/1 targets (n, M)."""
    return F.binary_cross_entropy_with_logits(fg_logits, target)


def selector_samples(ious: torch.Tensor, pos_iou: float = 0.5, neg_iou: float = 0.3,
                     samples: int = 64, generator: torch.Generator | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of up to ``samples`` windows, half positives (IoU >= pos_iou) and half negatives
    (IoU < neg_iou) where available (windows in between are ignored), and their 0/1 targets.
    Picking before scoring lets the selector run on the chosen windows only.
    """
    pos = (ious >= pos_iou).nonzero().squeeze(1)
    neg = (ious < neg_iou).nonzero().squeeze(1)

    def pick(idx, n):
        if len(idx) <= n:
            return idx
        return idx[torch.randperm(len(idx), generator=generator)[:n].to(idx.device)]

    pos = pick(pos, samples // 2)
    neg = pick(neg, samples - len(pos))
    target = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).to(ious)
    return torch.cat([pos, neg]), target

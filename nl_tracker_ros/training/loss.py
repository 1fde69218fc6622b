"""The two-step loss: GIoU and L1 on the grounding box and on every tracking box, added."""
from __future__ import annotations

import torch


def cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    """(..., 4) centre/size boxes -> corner boxes."""
    c, s = b[..., :2], b[..., 2:]
    return torch.cat((c - s / 2, c + s / 2), -1)


def giou_loss(pred_xyxy: torch.Tensor, gt_xyxy: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-box ``1 - GIoU`` and IoU of (B, 4) corner boxes (degenerate boxes are safe)."""
    lt = torch.max(pred_xyxy[:, :2], gt_xyxy[:, :2])
    rb = torch.min(pred_xyxy[:, 2:], gt_xyxy[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area_p = (pred_xyxy[:, 2:] - pred_xyxy[:, :2]).clamp(min=0).prod(1)
    area_g = (gt_xyxy[:, 2:] - gt_xyxy[:, :2]).clamp(min=0).prod(1)
    union = area_p + area_g - inter
    iou = inter / union.clamp(min=1e-7)
    hull = (torch.max(pred_xyxy[:, 2:], gt_xyxy[:, 2:])
            - torch.min(pred_xyxy[:, :2], gt_xyxy[:, :2])).clamp(min=0).prod(1)
    giou = iou - (hull - union) / hull.clamp(min=1e-7)
    return 1.0 - giou, iou


def box_loss(pred_cxcywh: torch.Tensor, gt_cxcywh: torch.Tensor, giou_weight: float = 2.0,
             l1_weight: float = 5.0, keep: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted GIoU + L1 of (B, 4) normalised boxes; the target is clamped to [0, 1].

    Both terms are on corner boxes, as the official code computes them. ``keep`` (B,) zeroes
    the loss of some samples (still averaged over all B, as the official code does).
    """
    pred = cxcywh_to_xyxy(pred_cxcywh.float())
    gt = cxcywh_to_xyxy(gt_cxcywh.float()).clamp(0.0, 1.0)
    g, iou = giou_loss(pred, gt)
    l1 = (pred - gt).abs().mean(1)
    if keep is not None:
        g, l1 = g * keep, l1 * keep
    g, l1 = g.mean(), l1.mean()
    loss = giou_weight * g + l1_weight * l1
    return loss, {'giou': g.item(), 'l1': l1.item(), 'iou': iou.mean().item()}


def joint_loss(ground_box: torch.Tensor, ground_gt: torch.Tensor, track_boxes, track_gts,
               giou_weight: float = 2.0, l1_weight: float = 5.0,
               track_keep: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Grounding loss plus the loss of every tracking step (JointNLT sec. 3.6).

    ``track_boxes`` / ``track_gts``: sequences of (B, 4) predictions and targets, one per search
    frame; ``track_keep`` (B,) masks tracking losses (templates from a failed grounding).
    Returns the total and the parts (``g_*`` grounding, ``t*_`` tracking steps).
    """
    total, stats = box_loss(ground_box, ground_gt, giou_weight, l1_weight)
    stats = {f'g_{k}': v for k, v in stats.items()}
    stats['g_loss'] = total.item()
    for i, (p, g) in enumerate(zip(track_boxes, track_gts, strict=True)):
        loss, s = box_loss(p, g, giou_weight, l1_weight, track_keep)
        total = total + loss
        stats.update({f't{i + 1}_{k}': v for k, v in s.items()})
        stats[f't{i + 1}_loss'] = loss.item()
    stats['loss'] = total.item()
    return total, stats

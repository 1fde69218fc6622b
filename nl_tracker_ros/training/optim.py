"""Optimizer and schedule: AdamW, backbones at 1e-5, everything else at 1e-4 (the paper)."""
from __future__ import annotations

import math

import torch
from torch import nn

BACKBONES = ('vision', 'text')  # JointNLT attributes holding the pretrained encoders


def param_groups(model: nn.Module, lr: float, backbone_lr: float) -> list[dict]:
    """Two groups: parameters under ``model.vision`` / ``model.text``, and the rest."""
    backbone, rest = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (backbone if name.split('.', 1)[0] in BACKBONES else rest).append(p)
    groups = [{'params': rest, 'lr': lr, 'name': 'rest'}]
    if backbone:
        groups.append({'params': backbone, 'lr': backbone_lr, 'name': 'backbones'})
    return groups


def build_optimizer(model: nn.Module, lr: float = 1e-4, backbone_lr: float = 1e-5,
                    weight_decay: float = 1e-4) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`."""
    return torch.optim.AdamW(param_groups(model, lr, backbone_lr), lr=lr,
                             weight_decay=weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, steps: int, drop_at: float,
                    factor: float, warmup_steps: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_steps``, then one drop by ``factor`` after ``drop_at``.

    The official schedule warms up for the first 10% of training and drops by 10x at epoch 200
    of 300. The factor is a pure function of the step, so resuming only needs the step.
    """
    milestone = max(1, int(round(steps * drop_at)))

    def scale(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
        return warm * (factor if step >= milestone else 1.0)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, scale)


def warmup_cosine(optimizer: torch.optim.Optimizer,
                  steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over the first twentieth of ``steps``, then cosine down to zero (the
    recovery fits: switch and selector, kind classifier)."""
    warm = max(1, steps // 20)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: min(1.0, (i + 1) / warm) * 0.5 * (1 + math.cos(math.pi * i / steps)))

"""One training loss for the switch and the selector, on features of the (frozen) joint model.

A training step, given the model's relation-encoder features of a batch of search crops or
grounding images (``HeadOutput.features``), the target boxes and the descriptions::

    text_emb, text_attn = switch.embed_text(text.tokens, text.pad_mask)
    loss, stats = recovery_loss(switch, selector, features, gt_cxcywh, text.tokens,
                                text.pad_mask, template_tokens, RecoveryLossWeights(), gen)

Per sample it draws one positive proposal (the target box, jittered, IoU >= 0.7) and
``negatives`` background proposals (IoU < 0.3; the given hard negatives, such as the boxes of
look-alike distractors, first), then sums:

- VSE++ triplet ranking (hardest negative) between positive regions and descriptions, where a
  description's negatives are the other samples' positives *and* its own frame's background
  proposals (what the switch must reject at run time: distractors and background);
- an absolute hinge that puts the target above ``pos_floor`` and its frame's background and
  distractors below ``neg_ceiling`` for the sample's own description: the state machine
  thresholds the similarity itself, so ranking within a batch is not enough. Samples whose
  target is not in the input (``present`` false) contribute only this negative part;
- with ``wrong_tokens`` (a description the target does not fit, e.g. another colour or kind),
  the same hinge and a margin below the true description for the target's region: the switch
  must tell "the purple star" from the red star it is looking at, not only the target from
  other regions;
- the two diversity losses (eq. 17 on the part maps, eq. 18 on the local prototype maps);
- the foreground BCE of every proposal's memory map against the target box (eq. 20);
- the selector's BCE on windows sampled over the map, positives by IoU with the target.

Its terms are functions of their own below: ``triplet_ranking_loss`` (VSE++, Faghri et al.,
2018), ``diversity_loss`` (eq. 17, 18: || A A^T - I ||_F^2 on row-normalised maps, so that the
parts and the prototypes look at different places / words), ``foreground_loss`` (eq. 20, against
``roi_foreground_target``) and ``selector_samples``.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from nl_tracker_ros.recovery.adars import AdaptiveRetrievalSwitch
from nl_tracker_ros.recovery.tsr import GuidedSelector, sliding_windows
from nl_tracker_ros.training.loss import cxcywh_to_xyxy


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


@dataclasses.dataclass(frozen=True)
class RecoveryLossWeights:
    """Weights and sampling of ``recovery_loss``."""

    triplet: float = 1.0
    margin: float = 0.2              # VSE++ margin
    absolute: float = 1.0            # hinge on the similarity itself
    pos_floor: float = 0.6           # the target's similarity should reach this
    neg_ceiling: float = 0.2         # background and distractors should stay below this
    mismatch: float = 1.0            # the target under a description it does not fit
    part_diversity: float = 0.1      # eq. 17
    proto_diversity: float = 0.1     # eq. 18
    foreground: float = 1.0          # eq. 20
    selector: float = 1.0
    negatives: int = 4               # background proposals per sample
    windows: int = 64                # selector windows sampled per sample


def box_iou_cxcywh(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of normalised boxes (..., 4) cxcywh, broadcast."""
    ax, bx = cxcywh_to_xyxy(a), cxcywh_to_xyxy(b)
    inter = (torch.minimum(ax[..., 2:], bx[..., 2:])
             - torch.maximum(ax[..., :2], bx[..., :2])).clamp_min(0).prod(-1)
    union = a[..., 2:].prod(-1) + b[..., 2:].prod(-1) - inter
    return inter / union.clamp_min(1e-12)


def sample_proposals(gt: torch.Tensor, negatives: int, generator: torch.Generator,
                     hard: list[torch.Tensor] | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per target box (B, 4): one jittered positive then ``negatives`` background boxes.

    ``hard`` (per sample, (m, 4) cxcywh) are negatives to use first (slightly jittered), such as
    distractor boxes; those overlapping the target (IoU >= 0.3) are skipped. Returns (boxes
    (B, 1 + negatives, 4) cxcywh in [0, 1], IoU with the target (B, 1 + n)).
    """
    b = len(gt)
    out = torch.empty(b, 1 + negatives, 4)
    for i in range(b):
        g = gt[i].detach().float().cpu()
        while True:   # positive: small shift and scale change
            j = g.clone()
            j[:2] += (torch.rand(2, generator=generator) - 0.5) * 0.2 * g[2:]
            j[2:] *= torch.exp((torch.rand(2, generator=generator) - 0.5) * 0.2)
            if box_iou_cxcywh(j, g) >= 0.7:
                break
        out[i, 0] = j
        k = 1
        own = hard[i].detach().float().cpu() if hard is not None and len(hard[i]) else None
        if own is not None:
            for n in torch.randperm(len(own), generator=generator).tolist():
                if k > negatives:
                    break
                h = own[n].clone()
                h[:2] += (torch.rand(2, generator=generator) - 0.5) * 0.1 * h[2:]
                if box_iou_cxcywh(h, g) < 0.3:
                    out[i, k] = h
                    k += 1
        for _ in range(200 * negatives):
            if k > negatives:
                break
            wh = g[2:] * torch.exp((torch.rand(2, generator=generator) - 0.5) * 1.0)
            wh = wh.clamp(0.02, 1.0)
            c = wh / 2 + torch.rand(2, generator=generator) * (1 - wh)
            cand = torch.cat([c, wh])
            if box_iou_cxcywh(cand, g) < 0.3:
                out[i, k] = cand
                k += 1
        while k <= negatives:   # a target filling the frame leaves no background: corners
            out[i, k] = torch.tensor([0.05, 0.05, 0.1, 0.1])
            k += 1
    out = out.to(gt.device, gt.dtype)
    return out, box_iou_cxcywh(out, gt.unsqueeze(1))


def recovery_loss(switch: AdaptiveRetrievalSwitch, selector: GuidedSelector | None,
                  features: torch.Tensor, gt_cxcywh: torch.Tensor, text_tokens: torch.Tensor,
                  text_pad: torch.Tensor | None = None,
                  template_tokens: torch.Tensor | None = None,
                  weights: RecoveryLossWeights = RecoveryLossWeights(),
                  generator: torch.Generator | None = None,
                  hard: list[torch.Tensor] | None = None,
                  present: torch.Tensor | None = None,
                  wrong_tokens: torch.Tensor | None = None,
                  wrong_pad: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """Total loss and its parts for features (B, C, S, S) with targets (B, 4) cxcywh.

    ``hard``: per sample (m, 4) cxcywh hard negatives; ``present`` (B,) bool: False where the
    target is not in the input (its ``gt_cxcywh`` row is then ignored); ``wrong_tokens``
    (B, L', D) and ``wrong_pad``: per sample a description its target does not fit.
    """
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    b = features.shape[0]
    if present is None:
        present = torch.ones(b, dtype=torch.bool, device=features.device)
    present = present.to(features.device).bool()
    # an absent target is placed off the map: its foreground target is empty everywhere
    gt = torch.where(present[:, None], gt_cxcywh, gt_cxcywh.new_tensor([-2.0, -2.0, 0.1, 0.1]))
    boxes, _ = sample_proposals(gt, weights.negatives, gen, hard)          # (B, 1+n, 4)
    k = boxes.shape[1]
    text, _ = switch.embed_text(text_tokens, text_pad)                   # (B, D)
    emb, aux = switch.embed_regions(switch.roi_features(features, boxes))  # (B*k, D)
    emb = emb.view(b, k, -1)
    scores_bg = torch.einsum('bd,bnd->bn', text, emb[:, 1:])              # (B, n)
    p = present.nonzero().squeeze(1)
    zero = features.new_zeros(())
    triplet = zero
    absolute = (scores_bg - weights.neg_ceiling).clamp_min(0).mean()
    if len(p):
        # a description's candidates: every present positive of the batch + its own background
        scores_pos = text[p] @ emb[p, 0].t()                              # (text, region)
        diag = scores_pos.diag()
        eye = torch.eye(len(p), dtype=torch.bool, device=features.device)
        worst = torch.cat([scores_pos.masked_fill(eye, -2.0), scores_bg[p]], 1).max(1).values
        cost_text = (weights.margin + worst - diag).clamp_min(0)
        if len(p) > 1:
            other = scores_pos.masked_fill(eye, -2.0).max(0).values       # hardest text
            cost_region = (weights.margin + other - diag).clamp_min(0)
        else:
            cost_region = torch.zeros_like(cost_text)
        triplet = (cost_text + cost_region).mean()
        absolute = absolute + (weights.pos_floor - diag).clamp_min(0).mean()
    mismatch = zero
    if wrong_tokens is not None and len(p):
        wrong, _ = switch.embed_text(wrong_tokens[p], None if wrong_pad is None else wrong_pad[p])
        s_wrong = (wrong * emb[p, 0]).sum(-1)
        mismatch = ((s_wrong - weights.neg_ceiling).clamp_min(0)
                    + (weights.margin + s_wrong - diag).clamp_min(0)).mean()
    fg_target = roi_foreground_target(boxes.reshape(-1, 4), gt.repeat_interleave(k, 0),
                                      switch.roi_size)
    parts = {
        'triplet': triplet,
        'absolute': absolute,
        'mismatch': mismatch,
        'part_diversity': diversity_loss(aux.part_attn),
        'proto_diversity': diversity_loss(aux.proto_attn[:, 1:]),
        'foreground': foreground_loss(aux.fg_logits, fg_target),
    }
    if selector is not None and weights.selector > 0 and len(p):
        tpl = template_tokens[p] if template_tokens is not None else None
        pad = text_pad[p] if text_pad is not None else None
        parts['selector'] = _selector_term(selector, features[p], gt[p], text_tokens[p],
                                           pad, tpl, weights, gen)
    total = sum(getattr(weights, name) * value for name, value in parts.items())
    stats = {name: float(value.detach()) for name, value in parts.items()}
    stats['loss'] = float(total.detach())
    return total, stats


def _selector_term(selector, features, gt, tokens, pad, template, weights, gen):
    s = features.shape[-1]
    wins = torch.as_tensor(sliding_windows(s * 16, s * 16, (0.1, 0.2, 0.35, 0.6), stride=0.5,
                                           max_windows=10000) / 16, dtype=features.dtype,
                           device=features.device)                       # cells, xywh
    xyxy = torch.cat([wins[:, :2], wins[:, :2] + wins[:, 2:]], 1)
    guide = selector.guide_vector(tokens, pad, template)
    losses = []
    for i in range(features.shape[0]):
        w_norm = torch.cat([wins[:, :2] + wins[:, 2:] / 2, wins[:, 2:]], 1) / s
        ious = box_iou_cxcywh(w_norm, gt[i].unsqueeze(0))
        extra = gt[i].unsqueeze(0) * s                                   # the exact target
        cells = torch.cat([xyxy, torch.cat([extra[:, :2] - extra[:, 2:] / 2,
                                            extra[:, :2] + extra[:, 2:] / 2], 1)])
        ious = torch.cat([ious, ious.new_ones(1)])
        idx, target = selector_samples(ious, samples=weights.windows, generator=gen)
        logits = selector(features[i:i + 1], cells[idx], guide[i])
        losses.append(F.binary_cross_entropy_with_logits(logits, target.to(logits)))
    return torch.stack(losses).mean()

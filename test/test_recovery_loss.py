"""Training losses: hand-checkable cases and a toy problem they can solve."""
import pytest
import torch
import torch.nn.functional as F

from nl_tracker_ros.recovery.adars import AdaptiveRetrievalSwitch
from nl_tracker_ros.training.recovery_loss import (diversity_loss, foreground_loss,
                                                   roi_foreground_target, selector_samples,
                                                   triplet_ranking_loss)


TOY_BOXES = torch.tensor([[0.3, 0.3, 0.3, 0.3], [0.7, 0.6, 0.4, 0.3], [0.5, 0.5, 0.3, 0.5],
                          [0.25, 0.7, 0.3, 0.4]])


def toy_features(boxes: torch.Tensor, patterns: torch.Tensor, size: int) -> torch.Tensor:
    """Noise maps (B, D, size, size) with ``patterns[i]`` added inside box i (cxcywh)."""
    feats = 0.1 * torch.randn(len(boxes), patterns.shape[1], size, size)
    for i, box in enumerate(boxes):
        x1, y1 = ((box[:2] - box[2:] / 2) * size).round().int().tolist()
        x2, y2 = ((box[:2] + box[2:] / 2) * size).round().int().tolist()
        feats[i, :, y1:y2, x1:x2] += patterns[i, :, None, None]
    return feats


def test_triplet_zero_when_positives_beat_negatives_by_the_margin():
    e = torch.eye(4)                      # orthogonal: positive 1, negatives 0
    assert triplet_ranking_loss(e, e, margin=0.2) == 0
    assert triplet_ranking_loss(e, e, margin=0.2, hard_negatives=False) == 0


def test_triplet_hand_computed_violation():
    region = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), dim=1)
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # scores: [[1, 0], [.707, .707]]; pos = [1, .707]
    # text direction (rows): row 0: 0.2 + 0 - 1 < 0; row 1: 0.2 + .707 - .707 = 0.2
    # region direction (cols): col 0: 0.2 + .707 - 1 = -0.093 -> 0; col 1: 0.2 + 0 - .707 < 0
    loss = triplet_ranking_loss(region, text, margin=0.2)
    assert loss.item() == pytest.approx(0.2 / 2, abs=1e-5)


def test_hard_negative_counts_only_the_worst():
    a = F.normalize(torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.4, 0.0], [0.8, 0.0, 0.6]]), dim=1)
    hard = triplet_ranking_loss(a, a, margin=0.5)
    total = triplet_ranking_loss(a, a, margin=0.5, hard_negatives=False)
    assert 0 < hard < total


def test_diversity_zero_for_disjoint_maps_and_high_for_identical():
    disjoint = torch.eye(3).unsqueeze(0)                          # (1, 3, 3)
    same = torch.ones(1, 3, 3) / 3
    assert diversity_loss(disjoint).item() == pytest.approx(0.0, abs=1e-6)
    # all pairs have cosine 1: 6 off-diagonal ones over 9 entries
    assert diversity_loss(same).item() == pytest.approx(6 / 9, abs=1e-5)


def test_roi_foreground_target_marks_cells_inside_the_box():
    roi = torch.tensor([[0.5, 0.5, 1.0, 1.0]])
    target = torch.tensor([[0.25, 0.5, 0.5, 1.0]])                # left half of the RoI
    m = roi_foreground_target(roi, target, 4).view(4, 4)
    assert m[:, :2].eq(1).all() and m[:, 2:].eq(0).all()


def test_foreground_loss_is_bce():
    logits = torch.tensor([[10.0, -10.0]])
    assert foreground_loss(logits, torch.tensor([[1.0, 0.0]])) < 1e-3
    assert foreground_loss(logits, torch.tensor([[0.0, 1.0]])) > 5


def test_selector_samples_balance_and_ignore_the_middle():
    ious = torch.tensor([0.9, 0.6, 0.4, 0.1, 0.0])
    idx, target = selector_samples(ious)
    assert idx.tolist() == [0, 1, 3, 4]                  # 0.4 lies between the two bounds
    assert target.tolist() == [1.0, 1.0, 0.0, 0.0]
    g = torch.Generator().manual_seed(0)
    many = torch.rand(500)
    idx, target = selector_samples(many, samples=16, generator=g)
    assert len(idx) == 16 and target.sum() == 8          # half positives when there are enough
    assert (many[idx[target == 1]] >= 0.5).all() and (many[idx[target == 0]] < 0.3).all()
    idx, target = selector_samples(torch.tensor([0.4, 0.45]))
    assert len(idx) == 0 and len(target) == 0


def test_switch_learns_a_toy_matching_problem():
    torch.manual_seed(0)
    d, s, b = 8, 6, 6
    sw = AdaptiveRetrievalSwitch(d, d, dim=16, roi_size=3, fg_classifiers=2, parts=2,
                                 local_prototypes=2, heads=2, gpo_dim=8)
    # object i: a constant feature pattern p_i inside the box; its description: words = p_i
    patterns = torch.randn(b, d)
    feats = 0.1 * torch.randn(b, d, s, s)
    feats[:, :, 1:5, 1:5] += patterns[:, :, None, None]
    boxes = torch.tensor([[[0.5, 0.5, 0.66, 0.66]]]).expand(b, 1, 4)
    words = patterns.unsqueeze(1).expand(b, 3, d) + 0.1 * torch.randn(b, 3, d)
    opt = torch.optim.Adam(sw.parameters(), lr=3e-3)

    def losses():
        text, t_attn = sw.embed_text(words)
        emb, aux = sw.embed_regions(sw.roi_features(feats, boxes))
        gt = torch.tensor([[0.5, 0.5, 0.66, 0.66]]).expand(b, 4)
        fg = roi_foreground_target(boxes[:, 0], gt, 3)
        return (triplet_ranking_loss(emb, text) + 0.1 * diversity_loss(aux.part_attn)
                + 0.1 * diversity_loss(aux.proto_attn[:, 1:]) + foreground_loss(aux.fg_logits, fg))

    first = losses().item()
    for _ in range(60):
        opt.zero_grad()
        loss = losses()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    with torch.no_grad():
        text, _ = sw.embed_text(words)
        emb, _ = sw.embed_regions(sw.roi_features(feats, boxes))
        assert ((emb @ text.t()).argmax(1) == torch.arange(b)).all()


def test_recovery_loss_trains_switch_and_selector_on_a_toy_scene():
    from nl_tracker_ros.training.recovery_loss import (RecoveryLossWeights, box_iou_cxcywh,
                                                       recovery_loss, sample_proposals)
    from nl_tracker_ros.recovery.tsr import GuidedSelector
    torch.manual_seed(1)
    d, s, b = 8, 8, 4
    patterns = torch.randn(b, d)
    gt = TOY_BOXES
    feats = toy_features(gt, patterns, s)
    words = patterns.unsqueeze(1).expand(b, 3, d).contiguous()
    sw = AdaptiveRetrievalSwitch(d, d, dim=16, roi_size=3, fg_classifiers=2, parts=2,
                                 local_prototypes=2, heads=2, gpo_dim=8)
    sel = GuidedSelector(d, d, dim=16, heads=2, layers=1, roi_size=2)
    opt = torch.optim.Adam(list(sw.parameters()) + list(sel.parameters()), lr=3e-3)
    w = RecoveryLossWeights(negatives=3, windows=32)
    gen = torch.Generator().manual_seed(0)
    boxes, ious = sample_proposals(gt, 3, gen)
    assert boxes.shape == (b, 4, 4) and (ious[:, 0] >= 0.7).all() and (ious[:, 1:] < 0.3).all()
    assert torch.allclose(box_iou_cxcywh(gt, gt), torch.ones(b))
    first, _ = recovery_loss(sw, sel, feats, gt, words, None, None, w, gen)
    for _ in range(40):
        opt.zero_grad()
        loss, stats = recovery_loss(sw, sel, feats, gt, words, None, None, w, gen)
        loss.backward()
        opt.step()
    assert set(stats) == {'triplet', 'absolute', 'mismatch', 'part_diversity',
                          'proto_diversity', 'foreground', 'selector', 'loss'}
    assert stats['mismatch'] == 0.0      # no wrong descriptions given
    assert loss.item() < 0.6 * first.item()
    with torch.no_grad():   # the switch now prefers each target over its frame's background
        text, _ = sw.embed_text(words)
        sims, _ = sw(feats, boxes, text)
        assert (sims[:, 0] > sims[:, 1:].max(1).values).all()


def test_hard_negatives_are_used_first_unless_they_overlap_the_target():
    from nl_tracker_ros.training.recovery_loss import box_iou_cxcywh, sample_proposals
    gt = torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2]])
    far = torch.tensor([[0.8, 0.8, 0.2, 0.2]])
    on_target = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    boxes, ious = sample_proposals(gt, 3, torch.Generator().manual_seed(0),
                                   hard=[far, on_target])
    assert box_iou_cxcywh(boxes[0, 1], far[0]) > 0.7          # the distractor, jittered
    assert (ious[:, 1:] < 0.3).all()                           # never the target itself
    assert (box_iou_cxcywh(boxes[1, 1:], on_target[0]) < 0.3).all()


def test_absent_samples_only_push_their_regions_down():
    from nl_tracker_ros.training.recovery_loss import RecoveryLossWeights, recovery_loss
    torch.manual_seed(0)
    d, s = 8, 8
    sw = AdaptiveRetrievalSwitch(d, d, dim=16, roi_size=3, fg_classifiers=2, parts=2,
                                 local_prototypes=2, heads=2, gpo_dim=8)
    feats = torch.randn(2, d, s, s)
    words = torch.randn(2, 3, d)
    gt = torch.tensor([[0.3, 0.3, 0.3, 0.3], [0.6, 0.6, 0.3, 0.3]])
    w = RecoveryLossWeights(negatives=2, selector=0.0)
    none = torch.zeros(2, dtype=torch.bool)
    loss, stats = recovery_loss(sw, None, feats, gt, words, weights=w, present=none)
    assert stats['triplet'] == 0.0 and 'selector' not in stats
    loss.backward()    # still a gradient: the negatives' hinge and the (empty) foreground
    assert sw.vis_in.weight.grad is not None and sw.vis_in.weight.grad.abs().sum() > 0
    _, both = recovery_loss(sw, None, feats, gt, words, weights=w,
                            present=torch.tensor([True, False]))
    assert both['triplet'] > 0.0


def test_mismatch_term_separates_a_description_from_one_its_target_does_not_fit():
    """Targets are a shape pattern plus one of two colours; the wrong description names the
    right shape with the other colour. Only the mismatch term asks for this distinction."""
    from nl_tracker_ros.training.recovery_loss import (RecoveryLossWeights, recovery_loss,
                                                       sample_proposals)
    torch.manual_seed(2)
    d, s, b = 8, 8, 4
    shape, colour = torch.randn(b, d), torch.randn(2, d)
    which = torch.tensor([0, 1, 0, 1])
    gt = TOY_BOXES
    feats = toy_features(gt, shape + colour[which], s)
    words = torch.stack([shape, colour[which]], 1)
    wrong = torch.stack([shape, colour[1 - which]], 1)
    sw = AdaptiveRetrievalSwitch(d, d, dim=16, roi_size=3, fg_classifiers=2, parts=2,
                                 local_prototypes=2, heads=2, gpo_dim=8)
    opt = torch.optim.Adam(sw.parameters(), lr=3e-3)
    w = RecoveryLossWeights(negatives=2, selector=0.0)
    gen = torch.Generator().manual_seed(0)
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss, stats = recovery_loss(sw, None, feats, gt, words, weights=w, generator=gen,
                                    wrong_tokens=wrong)
        loss.backward()
        opt.step()
        first = stats['mismatch'] if first is None else first
    assert first > 0 and stats['mismatch'] < 0.3 * first
    with torch.no_grad():
        boxes, _ = sample_proposals(gt, 1, torch.Generator().manual_seed(5))
        right_sim, _ = sw(feats, boxes[:, :1], sw.embed_text(words)[0])
        wrong_sim, _ = sw(feats, boxes[:, :1], sw.embed_text(wrong)[0])
        assert (right_sim > wrong_sim + 0.1).all()

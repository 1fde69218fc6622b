"""Metrics against small cases computed by hand (numbers in the comments, not from the code)."""
import math

import numpy as np
import pytest

from nl_tracker_ros.evaluation import metrics
from nl_tracker_ros.errors import InputError
from nl_tracker_ros.track_types import EventKind, TrackState as S

NAN4 = [np.nan] * 4
GT10 = [0, 0, 10, 10]

# Four frames, GT a 10x10 box at the origin, target absent on the last one.
#   f0: exact box                -> IoU 1,   centre 0,  normalised 0
#   f1: shifted 5 px right       -> IoU 50/150 = 1/3, centre 5, normalised 0.5
#   f2: far away (30, 40)        -> IoU 0,   centre 50, normalised 5
#   f3: GT absent, any box
GT4 = np.array([GT10, GT10, GT10, NAN4], dtype=float)
ABSENT4 = np.array([False, False, False, True])
PRED4 = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [30, 40, 10, 10], [0, 0, 10, 10]], float)


def test_frame_errors_values():
    err = metrics.frame_errors(PRED4, GT4, ABSENT4)
    assert err.iou[:3] == pytest.approx([1.0, 1 / 3, 0.0])
    assert err.center[:3] == pytest.approx([0.0, 5.0, 50.0])
    assert err.norm_center[:3] == pytest.approx([0.0, 0.5, 5.0])
    assert err.iou[3] == -1 and math.isinf(err.center[3])


def test_pytracking_convention_counts_absent_frame_as_failure():
    cur = metrics.curves(metrics.frame_errors(PRED4, GT4, ABSENT4, convention='pytracking'))
    # Denominator 4. IoU > t: t in {0, .05, ..., .30} (7 values): f0, f1 -> 2/4;
    # t in {.35, ..., .95} (13 values): f0 -> 1/4; t = 1: none.
    assert cur.success[0] == pytest.approx(0.5)
    assert cur.success[7] == pytest.approx(0.25)
    assert cur.success[20] == 0.0
    assert cur.auc == pytest.approx((7 * 0.5 + 13 * 0.25) / 21)     # 0.32142857
    assert cur.precision20 == pytest.approx(0.5)        # centre 0 and 5 px <= 20
    assert cur.norm_precision_score == pytest.approx(0.25)      # only f0 <= 0.2


def test_tnl2k_convention_removes_absent_frame():
    cur = metrics.curves(metrics.frame_errors(PRED4, GT4, ABSENT4, convention='tnl2k'))
    assert cur.auc == pytest.approx((7 * 2 / 3 + 13 * 1 / 3) / 21)   # 3/7
    assert cur.precision20 == pytest.approx(2 / 3)
    assert cur.norm_precision_score == pytest.approx(1 / 3)


def test_absent_aware_convention_credits_only_a_withheld_box():
    # f3 (absent) with a box fails as in pytracking: same curves
    boxed = metrics.curves(metrics.frame_errors(PRED4, GT4, ABSENT4, convention='absent-aware'))
    assert boxed.auc == pytest.approx((7 * 0.5 + 13 * 0.25) / 21)
    # f3 without a box is a perfect frame: IoU > t for every t < 1, centre 0
    pred = PRED4.copy()
    pred[3] = np.nan
    err = metrics.frame_errors(pred, GT4, ABSENT4, convention='absent-aware')
    assert err.iou[3] == 1.0 and err.center[3] == 0.0 and err.in_curve.all()
    cur = metrics.curves(err)
    assert cur.auc == pytest.approx((7 * 0.75 + 13 * 0.5) / 21)
    assert cur.precision20 == pytest.approx(0.75) and cur.norm_precision_score == 0.5
    # a visible frame without a box still fails, and a dropped absent frame is no "absent" answer
    pred[0] = np.nan
    err = metrics.frame_errors(pred, GT4, ABSENT4, [False, False, False, True], 'absent-aware')
    assert err.iou[0] == 0.0 and err.iou[3] == -1


def test_unclaimed_box_is_scored_by_overlap_conventions_only():
    # f0 (visible, exact box) and f3 (absent) come with candidate boxes the tracker did not claim
    claimed = [False, True, True, False]
    for conv in ('pytracking', 'tnl2k'):          # every box scored, claimed or not
        a = metrics.frame_errors(PRED4, GT4, ABSENT4, convention=conv, claimed=claimed)
        b = metrics.frame_errors(PRED4, GT4, ABSENT4, convention=conv)
        assert np.array_equal(a.iou, b.iou) and a.iou[0] == 1.0
    err = metrics.frame_errors(PRED4, GT4, ABSENT4, convention='absent-aware', claimed=claimed)
    # f0: an unclaimed box on a visible frame is no box (a failure); f3: "absent" was right
    assert err.iou[0] == 0.0 and err.iou[3] == 1.0 and err.center[3] == 0.0
    assert metrics.curves(err).auc == pytest.approx((7 * 0.5 + 13 * 0.25) / 21)


def test_held_needs_a_box_and_a_holding_state():
    pred = np.array([GT10, GT10, NAN4, GT10, GT10], float)
    states = [S.TRACKING, S.REFOUND, S.TRACKING, S.SEARCHING, S.GROUNDING]
    assert list(metrics.held(pred, states)) == [True, True, False, False, False]
    # a candidate while grounding is no claim that the target is there
    assert list(metrics.predicted_absent(pred, states)) == [False, False, True, True, True]


def test_thresholds_strict_for_overlap_inclusive_for_centre():
    # IoU exactly 0.5 (a 5x10 box inside the 10x10): not a success at t = 0.5 (IoU > t).
    cur = metrics.curves(metrics.frame_errors([[0, 0, 5, 10]], [GT10]))
    assert cur.success[10] == 0.0 and cur.success[9] == 1.0
    # Centre error exactly 5 px counts at the 5 px threshold (error <= t).
    cur = metrics.curves(metrics.frame_errors([[5, 0, 10, 10]], [GT10]))
    assert cur.precision[5] == 1.0 and cur.precision[4] == 0.0


def test_missing_box_and_dropped_frame_are_failures():
    pred = np.array([GT10, NAN4, GT10], float)
    gt = np.array([GT10, GT10, GT10], float)
    err = metrics.frame_errors(pred, gt, dropped=[False, False, True])
    cur = metrics.curves(err)
    assert cur.success[0] == pytest.approx(1 / 3)     # only f0 of three
    assert list(err.status) == [metrics.SCORED, metrics.SCORED, metrics.DROPPED]


def test_unknown_ground_truth_is_excluded_not_failed():
    pred = np.array([GT10, GT10], float)
    gt = np.array([GT10, NAN4], float)
    err = metrics.frame_errors(pred, gt, [False, False])
    assert metrics.curves(err).auc == pytest.approx(20 / 21)   # 1.0 at 20 of 21 thresholds
    assert err.status[1] == metrics.EXCLUDED_NO_GT


def test_mean_curves_average_sequences_not_frames():
    # Sequence A: 1 frame, perfect -> P@20 = 1. Sequence B: 3 frames, all far -> 0.
    a = metrics.curves(metrics.frame_errors([GT10], [GT10]))
    b = metrics.curves(metrics.frame_errors([[100, 100, 10, 10]] * 3, [GT10] * 3))
    mean = metrics.mean_curves([a, None, b])
    assert mean.precision20 == pytest.approx(0.5)   # pooled frames would give 0.25


def test_no_scored_frame_gives_no_curves():
    assert metrics.curves(metrics.frame_errors([GT10], [NAN4], [True], convention='tnl2k')) \
        is None


def test_bad_shapes_and_convention_raise():
    with pytest.raises(InputError, match='predicted boxes'):
        metrics.frame_errors(np.zeros((2, 4)), np.zeros((3, 4)))
    with pytest.raises(InputError, match='convention'):
        metrics.frame_errors([GT10], [GT10], convention='otb')


def test_absent_counts_precision_recall_f1():
    pred = [False, False, True, True, False]
    gt = [False, True, True, False, False]
    c = metrics.absent_counts(pred, gt)
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 1, 1, 2)
    assert (c.precision, c.recall, c.f1) == (0.5, 0.5, 0.5)
    # Masked frames are not counted at all.
    c = metrics.absent_counts(pred, gt, mask=[True, False, True, True, True])
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 1, 0, 2)
    assert c.f1 == pytest.approx(2 * 0.5 * 1 / 1.5)


def test_counts_edge_cases():
    assert metrics.Counts(tn=5).f1 == 1.0     # never absent, never said so
    assert metrics.Counts().f1 is None
    assert metrics.Counts(fp=2, tn=3).f1 == 0.0
    assert (metrics.Counts(1, 2, 3, 4) + metrics.Counts(1, 1, 1, 1)) == metrics.Counts(2, 3, 4, 5)


def test_predicted_absent_from_box_or_state():
    pred = np.array([GT10, NAN4, GT10, GT10, [0, 0, 0, 5]], float)
    states = [S.TRACKING, S.TRACKING, S.LOST, S.SEARCHING, S.REFOUND]
    assert list(metrics.predicted_absent(pred, states)) == [False, True, True, True, True]


def test_runs():
    assert metrics.runs([True, True, False, True]) == [(0, 2), (3, 4)]
    assert metrics.runs([False, False]) == []


def test_loss_delays():
    gt = [0, 0, 1, 1, 1, 0, 0, 1, 1, 0]
    pred = [0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    # run [2, 5): first "absent" at frame 4 -> 2; run [7, 9): never -> None.
    assert metrics.loss_delays(np.bool_(pred), np.bool_(gt)) == [2, None]
    # An absent run at the start is not a disappearance.
    assert metrics.loss_delays([True, True, False], [True, True, False]) == []


def test_reacquire_delays_need_holding_state_and_overlap():
    gt = np.array([GT10] * 5, float)
    absent = [False, True, False, False, False]
    pred = np.array([GT10, NAN4, GT10, GT10, GT10], float)
    states = [S.TRACKING, S.LOST, S.SEARCHING, S.REFOUND, S.TRACKING]
    assert metrics.reacquire_delays(pred, states, gt, absent) == [1]   # frame 3 - frame 2
    pred[3] = [50, 50, 5, 5]                                            # REFOUND elsewhere
    assert metrics.reacquire_delays(pred, states, gt, absent) == [2]
    states[4] = S.SEARCHING
    assert metrics.reacquire_delays(pred, states, gt, absent) == [None]


def test_event_scores():
    absent = np.array([0, 0, 0, 0, 1, 1, 1, 0, 0, 0], bool)
    gt = np.array([GT10] * 10, float)
    events = [(2, EventKind.LOST, None),            # 2 frames early: fine with tolerance 5
              (8, EventKind.LOST, None),            # target visible on 8..13: wrong
              (7, EventKind.REFOUND, (0, 0, 10, 10)),   # on the target: right
              (9, EventKind.REFOUND, (50, 50, 5, 5))]   # elsewhere: wrong
    ev = metrics.event_scores(events, gt, absent, tolerance=5)
    assert ev['lost']['precision'] == 0.5 and ev['lost']['recall'] == 1.0
    assert ev['refound']['precision'] == 0.5 and ev['refound']['recall'] == 1.0
    ev = metrics.event_scores(events, gt, absent, tolerance=1)
    assert ev['lost']['precision'] == 0.0 and ev['lost']['recall'] == 0.0


def test_delay_summary():
    s = metrics.delay_summary([2, None, 7, 3], within=5)
    assert s['count'] == 4 and s['detected'] == 3
    assert s['within5'] == 0.5          # 2 and 3 of four
    assert s['median'] == 3.0 and s['mean'] == pytest.approx(4.0)
    assert metrics.delay_summary([], within=5)['within5'] is None


def _pytracking_reference(pred, gt, visible, lasot):
    """pytracking's calc_seq_err_robust + extract_results, transcribed with its pixel
    conventions (centre x + (w - 1) / 2, inclusive-pixel IoU), for a cross-check."""
    gt = gt.copy()
    gt[:, 2:][gt[:, 2:] == 0] = np.nan     # absent rows (0 size): never divided by

    def centre(b):
        return b[:, :2] + 0.5 * (b[:, 2:] - 1.0)

    tl = np.maximum(pred[:, :2], gt[:, :2])
    br = np.minimum(pred[:, :2] + pred[:, 2:] - 1.0, gt[:, :2] + gt[:, 2:] - 1.0)
    inter = np.clip(br - tl + 1.0, 0, None).prod(1)
    iou = inter / (pred[:, 2:].prod(1) + gt[:, 2:].prod(1) - inter)
    err = np.sqrt(((centre(pred) - centre(gt)) ** 2).sum(1))
    nerr = np.sqrt(((centre(pred) / gt[:, 2:] - centre(gt) / gt[:, 2:]) ** 2).sum(1))
    valid = (gt[:, 2:] > 0).all(1) & visible
    iou[~valid], err[~valid], nerr[~valid] = -1.0, np.inf, -1.0
    if lasot:
        nerr[~visible] = np.inf
    n = len(gt) if lasot else valid.sum()
    thr = np.arange(0.0, 1.0 + 0.05, 0.05)
    return ((iou[:, None] > thr).sum(0) / n, (err[:, None] <= np.arange(51)).sum(0) / n,
            (nerr[:, None] <= np.arange(51) / 100).sum(0) / n)


def test_matches_pytracking_on_random_boxes():
    rng = np.random.default_rng(3)
    n = 200
    gt = np.column_stack([rng.uniform(0, 300, (n, 2)), rng.uniform(5, 80, (n, 2))])
    pred = gt + rng.normal(0, 12, (n, 4))
    pred[:, 2:] = np.abs(pred[:, 2:]) + 1
    # (pytracking also overwrites frame 1 with the ground truth; we do not, nor does the ref.)
    absent = rng.random(n) < 0.15
    gt_file = gt.copy()
    gt_file[absent] = 0.0       # how LaSOT writes absent frames
    gt_ours = gt.copy()
    gt_ours[absent] = np.nan
    for conv, lasot in (('pytracking', True), ('tnl2k', False)):
        ref = _pytracking_reference(pred, gt_file, ~absent, lasot)
        cur = metrics.curves(metrics.frame_errors(pred, gt_ours, absent, convention=conv))
        np.testing.assert_allclose(cur.success, ref[0], atol=1e-12)
        np.testing.assert_allclose(cur.precision, ref[1], atol=1e-12)
        # pytracking's normalised error of invalid frames is -1 (a hit) outside LaSOT; we do
        # not copy that: compare normalised precision where it is well defined.
        if lasot:
            np.testing.assert_allclose(cur.norm_precision, ref[2], atol=1e-12)

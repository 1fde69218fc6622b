"""Tracking metrics with the conventions of pytracking and the TNL2K toolkit.

Pure numpy; nothing here runs a tracker. The definitions follow pytracking's
``analysis/extract_results.py`` (``calc_seq_err_robust``) and ``plot_results.py``:

- success: fraction of scored frames whose IoU is strictly greater than each threshold of
  ``np.linspace(0, 1, 21)``; AUC is the mean of that 21-point curve (pytracking and the OTB/LaSOT
  toolkits average the curve, they do not integrate it with the trapezoid rule);
- precision: fraction of scored frames whose centre error is <= each of 0..50 px; the score is the
  value at 20 px;
- normalised precision: the centre offset divided by the ground-truth width and height
  (per axis), thresholds 0..0.5 in steps of 0.01; the score is the value at 0.2;
- overall figures are the mean of the per-sequence curves over sequences with at least one scored
  frame (pytracking's ``valid_sequence``), not a pool of all frames.

Which frames are scored (``convention``):

- ``'pytracking'``: frames marked absent count against the tracker (pytracking with
  ``target_visible``, as for LaSOT): they stay in the denominator and can never succeed;
- ``'tnl2k'``: frames marked absent are removed from scoring, as the TNL2K toolkit does;
- ``'absent-aware'`` (ours, for trackers that say when the target is gone): frames marked absent
  stay in the denominator, as in pytracking, but one where the tracker did not claim the target
  is a perfect frame (IoU 1, centre error 0) and one where it did a failure; on visible frames an
  unclaimed box counts as no box. The other two conventions cannot tell a tracker that reports
  "lost" from one that keeps boxing a look-alike.

A box is claimed (``held``) unless the caller says otherwise: our tracker reports a box on every
frame a model step ran, and claims it only in state TRACKING or REFOUND (:func:`held`). The
pytracking and TNL2K conventions score every box, claimed or not, as long-term trackers are
scored on LaSOT (a box on every frame, a confidence alongside).

In all three, frames whose ground truth is unknown (NaN or non-positive size) and not marked
absent are excluded, and a visible frame where the tracker gave no box counts as a failure.
Success and precision equal pytracking's numbers for the same boxes (``test_metrics``
cross-checks them; its inclusive-pixel centre and IoU conventions cancel out). One pytracking
quirk is not copied:
outside LaSOT it scores invalid frames as hits in normalised precision. Unlike the common
toolkits we never overwrite frame 1 with the ground truth: a run initialised from language only is
scored on its own first-frame box.

Lost/re-found scoring treats "target absent" as the positive class: a frame is predicted absent
when the tracker did not hold the target (no box, or a state other than TRACKING / REFOUND).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from nl_tracker_ros.boxes import iou_xywh, xywh_to_cxcywh
from nl_tracker_ros.errors import InputError
from nl_tracker_ros.track_types import HOLDING_STATES, EventKind

CONVENTIONS = ('pytracking', 'tnl2k', 'absent-aware')
OVERLAP_THRESHOLDS = np.linspace(0.0, 1.0, 21)
CENTER_THRESHOLDS = np.arange(0, 51, dtype=np.float64)        # pixels
NORM_CENTER_THRESHOLDS = np.arange(0, 51, dtype=np.float64) / 100.0
PRECISION_INDEX = 20        # 20 px on CENTER_THRESHOLDS, 0.2 on NORM_CENTER_THRESHOLDS

# Per-frame status codes (see FrameErrors.status).
SCORED, DROPPED, EXCLUDED_ABSENT, EXCLUDED_NO_GT = 0, 1, 2, 3
STATUS_NAMES = ('scored', 'dropped', 'excluded: target absent', 'excluded: no ground truth')


@dataclasses.dataclass(frozen=True)
class FrameErrors:
    """Per-frame errors of one sequence.

    ``iou`` is -1 and the centre errors are +inf on frames that cannot succeed (absent under the
    pytracking convention, no box, dropped) or are not scored. ``in_curve`` marks the frames in
    the denominator of the curves: scored frames plus dropped frames that would have been scored.
    ``status`` partitions all frames into SCORED / DROPPED / EXCLUDED_* codes.
    """

    iou: np.ndarray
    center: np.ndarray
    norm_center: np.ndarray
    in_curve: np.ndarray
    status: np.ndarray


def _as_boxes(boxes, n: int, name: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.shape != (n, 4):
        raise InputError(f'{name}: expected shape ({n}, 4), got {arr.shape}')
    return arr


def _as_flags(flags, n: int, name: str) -> np.ndarray:
    if flags is None:
        return np.zeros(n, dtype=bool)
    arr = np.asarray(flags, dtype=bool)
    if arr.shape != (n,):
        raise InputError(f'{name}: expected shape ({n},), got {arr.shape}')
    return arr


def valid_boxes(boxes_xywh: np.ndarray) -> np.ndarray:
    """True where a box row is finite with positive width and height."""
    b = np.asarray(boxes_xywh, dtype=np.float64)
    with np.errstate(invalid='ignore'):
        return np.isfinite(b).all(axis=-1) & (b[..., 2] > 0) & (b[..., 3] > 0)


def frame_errors(pred_xywh, gt_xywh, gt_absent=None, dropped=None,
                 convention: str = 'pytracking', claimed=None) -> FrameErrors:
    """IoU and centre errors per frame under ``convention`` (one of ``CONVENTIONS``).

    ``pred_xywh`` (N, 4) has NaN rows where the tracker gave no box; ``gt_xywh`` (N, 4) NaN rows
    where the ground truth is unknown; ``gt_absent`` (N,) True where the target is not visible;
    ``dropped`` (N,) True where the tracker never saw the frame (counted as a failure);
    ``claimed`` (N,) True where a box claims the target is there (default: every box; only
    the absent-aware convention reads it).
    """
    if convention not in CONVENTIONS:
        raise InputError(f'convention: expected one of {list(CONVENTIONS)}, got {convention!r}')
    gt = np.atleast_2d(np.asarray(gt_xywh, dtype=np.float64))
    n = gt.shape[0]
    gt = _as_boxes(gt, n, 'ground truth boxes')
    pred = _as_boxes(pred_xywh, n, 'predicted boxes')
    absent = _as_flags(gt_absent, n, 'absent flags')
    dropped = _as_flags(dropped, n, 'dropped flags')

    visible = valid_boxes(gt) & ~absent
    has_pred = valid_boxes(pred) & ~dropped
    if convention == 'absent-aware' and claimed is not None:
        has_pred &= _as_flags(claimed, n, 'claimed flags')
    ok = visible & has_pred
    iou = np.full(n, -1.0)
    center = np.full(n, np.inf)
    norm_center = np.full(n, np.inf)
    iou[visible] = 0.0      # visible but no usable box: a failure at every threshold
    if ok.any():
        iou[ok] = iou_xywh(pred[ok], gt[ok])
        d = xywh_to_cxcywh(pred[ok])[:, :2] - xywh_to_cxcywh(gt[ok])[:, :2]
        center[ok] = np.sqrt((d ** 2).sum(axis=1))
        norm_center[ok] = np.sqrt(((d / gt[ok, 2:]) ** 2).sum(axis=1))

    if convention == 'absent-aware':
        said_absent = absent & ~has_pred & ~dropped
        iou[said_absent] = 1.0
        center[said_absent] = norm_center[said_absent] = 0.0
    in_curve = visible.copy() if convention == 'tnl2k' else visible | absent
    status = np.full(n, SCORED, dtype=np.int8)
    status[~in_curve & absent] = EXCLUDED_ABSENT
    status[~in_curve & ~absent] = EXCLUDED_NO_GT
    status[dropped] = DROPPED
    return FrameErrors(iou=iou, center=center, norm_center=norm_center,
                       in_curve=in_curve, status=status)


@dataclasses.dataclass(frozen=True)
class Curves:
    """Success, precision and normalised-precision curves of one sequence (or their mean)."""

    success: np.ndarray         # (21,) over OVERLAP_THRESHOLDS
    precision: np.ndarray       # (51,) over CENTER_THRESHOLDS
    norm_precision: np.ndarray  # (51,) over NORM_CENTER_THRESHOLDS

    @property
    def auc(self) -> float:
        """Mean of the success curve (pytracking/OTB convention)."""
        return float(self.success.mean())

    @property
    def precision20(self) -> float:
        """Precision at 20 px centre error."""
        return float(self.precision[PRECISION_INDEX])

    @property
    def norm_precision_score(self) -> float:
        """Normalised precision at 0.2."""
        return float(self.norm_precision[PRECISION_INDEX])


def curves(err: FrameErrors) -> Curves | None:
    """Curves of one sequence; None if it has no frame in the denominator."""
    m = err.in_curve
    count = int(m.sum())
    if count == 0:
        return None
    iou, c, nc = err.iou[m], err.center[m], err.norm_center[m]
    return Curves(
        success=(iou[:, None] > OVERLAP_THRESHOLDS[None]).sum(0) / count,
        precision=(c[:, None] <= CENTER_THRESHOLDS[None]).sum(0) / count,
        norm_precision=(nc[:, None] <= NORM_CENTER_THRESHOLDS[None]).sum(0) / count)


def mean_curves(items: list[Curves | None]) -> Curves | None:
    """Average per-sequence curves, skipping sequences without scored frames."""
    items = [c for c in items if c is not None]
    if not items:
        return None
    return Curves(success=np.mean([c.success for c in items], axis=0),
                  precision=np.mean([c.precision for c in items], axis=0),
                  norm_precision=np.mean([c.norm_precision for c in items], axis=0))


def held(pred_xywh, states) -> np.ndarray:
    """True where the tracker claims the target: a box in state TRACKING or REFOUND."""
    pred = np.asarray(pred_xywh, dtype=np.float64)
    st = np.asarray(states, dtype=np.int64)
    return valid_boxes(pred) & np.isin(st, [int(s) for s in HOLDING_STATES])


def predicted_absent(pred_xywh, states) -> np.ndarray:
    """True where the tracker says the target is not there: it does not hold it."""
    return ~held(pred_xywh, states)


@dataclasses.dataclass(frozen=True)
class Counts:
    """Confusion counts with "absent" (or "event correct") as the positive class."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: 'Counts') -> 'Counts':
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn,
                      self.tn + other.tn)

    @property
    def precision(self) -> float | None:
        """TP / (TP + FP); None when nothing was predicted positive."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        """TP / (TP + FN); None when there are no positives."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        """Harmonic mean of precision and recall; None when either is undefined.

        With no positives and no positive predictions at all the answer is perfect (1.0): the
        tracker correctly never claimed the target was gone.
        """
        if self.tp + self.fp + self.fn == 0:
            return 1.0 if self.tn else None
        p, r = self.precision, self.recall
        if p is None or r is None:
            return 0.0
        return 2 * p * r / (p + r) if p + r else 0.0


def absent_counts(pred_absent, gt_absent, mask=None) -> Counts:
    """Per-frame confusion of absent predictions against ground-truth absent flags.

    ``mask`` (N,) selects the frames to count (e.g. not dropped, ground truth known).
    """
    p = np.asarray(pred_absent, dtype=bool)
    g = np.asarray(gt_absent, dtype=bool)
    m = np.ones_like(g) if mask is None else np.asarray(mask, dtype=bool)
    return Counts(tp=int((p & g & m).sum()), fp=int((p & ~g & m).sum()),
                  fn=int((~p & g & m).sum()), tn=int((~p & ~g & m).sum()))


def runs(flags) -> list[tuple[int, int]]:
    """Maximal runs of True in ``flags`` as (start, end) with end exclusive."""
    f = np.concatenate([[False], np.asarray(flags, dtype=bool), [False]]).astype(np.int8)
    d = np.diff(f)
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def loss_delays(pred_absent, gt_absent) -> list[int | None]:
    """Frames from each disappearance until the tracker first says absent (None: never did).

    A disappearance is an absent run that follows a visible frame (not one at the start). Only
    frames inside the absent run count: saying "lost" after the target came back is no detection.
    """
    p = np.asarray(pred_absent, dtype=bool)
    out = []
    for start, end in runs(gt_absent):
        if start == 0:
            continue
        hit = np.flatnonzero(p[start:end])
        out.append(int(hit[0]) if hit.size else None)
    return out


def reacquire_delays(pred_xywh, states, gt_xywh, gt_absent) -> list[int | None]:
    """Frames from each reappearance until the tracker holds the target again (None: never).

    A reappearance is a visible run that follows an absent frame. "Holds" means state TRACKING
    or REFOUND with a box that overlaps the ground truth (IoU > 0), inside that visible run.
    """
    pred = np.asarray(pred_xywh, dtype=np.float64)
    gt = np.asarray(gt_xywh, dtype=np.float64)
    absent = np.asarray(gt_absent, dtype=bool)
    ok = held(pred, states) & valid_boxes(gt)
    hold = np.zeros(len(absent), dtype=bool)
    if ok.any():
        hold[ok] = iou_xywh(pred[ok], gt[ok]) > 0
    out = []
    for start, end in runs(~absent):
        if start == 0:
            continue
        hit = np.flatnonzero(hold[start:end])
        out.append(int(hit[0]) if hit.size else None)
    return out


def event_scores(events, gt_xywh, gt_absent, tolerance: int = 5) -> dict[str, dict]:
    """Event-level precision/recall of LOST and REFOUND events against the ground truth.

    ``events`` is a sequence of (frame_index, EventKind, box_xywh or None). A LOST (or NOT_FOUND)
    event is correct if the target is absent at its frame or within ``tolerance`` frames after
    it (an early warning while the target is being covered); a disappearance is recalled if such
    an event falls in [start - tolerance, end). A REFOUND event is correct if the target is
    visible and the event box overlaps it; a reappearance is recalled if a REFOUND or ACQUIRED
    event with an overlapping box falls inside its visible run. Precision is over events,
    recall over ground-truth transitions; both None when there is nothing to divide by.
    """
    gt = np.asarray(gt_xywh, dtype=np.float64)
    absent = np.asarray(gt_absent, dtype=bool)
    n = len(absent)
    lost_kinds = (EventKind.LOST, EventKind.NOT_FOUND)
    found_kinds = (EventKind.REFOUND, EventKind.ACQUIRED)

    def overlaps(f, b):
        return (0 <= f < n and not absent[f] and b is not None and bool(valid_boxes(gt[f]))
                and float(iou_xywh(np.asarray(b, dtype=np.float64), gt[f])) > 0)

    lost_frames = [f for f, k, _ in events if k in lost_kinds]
    found = [(f, k, overlaps(f, b)) for f, k, b in events if k in found_kinds]
    lost_ok = [bool(absent[max(f, 0):min(f + tolerance + 1, n)].any()) for f in lost_frames]
    refound_ok = [g for _, k, g in found if k == EventKind.REFOUND]
    gone = [(s, e) for s, e in runs(absent) if s > 0]
    back = [(s, e) for s, e in runs(~absent) if s > 0]
    lost_missed = sum(not any(s - tolerance <= f < e for f in lost_frames) for s, e in gone)
    back_missed = sum(not any(s <= f < e and g for f, _, g in found) for s, e in back)
    return {'lost': _event_block(lost_ok, len(gone), lost_missed),
            'refound': _event_block(refound_ok, len(back), back_missed)}


def _event_block(correct: list[bool], transitions: int, missed: int) -> dict:
    events = len(correct)
    return {'events': events, 'correct': int(sum(correct)), 'transitions': transitions,
            'recalled': transitions - missed,
            'precision': sum(correct) / events if events else None,
            'recall': (transitions - missed) / transitions if transitions else None}


def delay_summary(delays: list[int | None], within: int) -> dict:
    """Count, detected fraction, fraction within ``within`` frames, median and mean delay."""
    got = [d for d in delays if d is not None]
    n = len(delays)
    return {
        'count': n,
        'detected': len(got),
        f'within{within}': (sum(d <= within for d in got) / n) if n else None,
        'median': float(np.median(got)) if got else None,
        'mean': float(np.mean(got)) if got else None,
    }


def finite_or_none(x) -> float | None:
    """JSON-safe number: None for NaN/inf/None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None

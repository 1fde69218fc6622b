"""Scoring: the figures of one run, and of a batch of runs as one configuration's JSON block.

The per-frame and per-curve arithmetic is :mod:`nl_tracker_ros.evaluation.metrics`; this module
puts it together per sequence (:func:`score_run`) and over sequences (:func:`summarize`).
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Iterable

import numpy as np

from nl_tracker_ros.evaluation import metrics
from nl_tracker_ros.evaluation.runner import EvalConfig, SequenceRun


@dataclasses.dataclass(frozen=True)
class SequenceScore:
    """Numbers of one sequence: the JSON block, the curves and the absent confusion."""

    block: dict
    curves: metrics.Curves | None
    absent: metrics.Counts
    loss_delays: list
    reacquire_delays: list
    events: dict


def _figures(cur, mean_iou, absent: metrics.Counts, loss: list, reacq: list, events: dict,
             config: EvalConfig) -> dict:
    """The figures a sequence's block and a configuration's summary share, in report order."""
    return {
        'auc': cur.auc if cur else None,
        'precision20': cur.precision20 if cur else None,
        'norm_precision': cur.norm_precision_score if cur else None,
        'mean_iou': mean_iou,
        'absent_precision': absent.precision, 'absent_recall': absent.recall,
        'absent_f1': absent.f1, 'absent_counts': dataclasses.asdict(absent),
        'loss_delay': metrics.delay_summary(loss, config.loss_within),
        'reacquire_delay': metrics.delay_summary(reacq, config.reacquire_within),
        'events': events,
    }


def score_run(run: SequenceRun, config: EvalConfig = EvalConfig()) -> SequenceScore:
    """Score one run against its ground truth under ``config.convention``."""
    err = metrics.frame_errors(run.boxes_xywh, run.gt_xywh, run.gt_absent, run.dropped,
                               config.convention, run.held)
    cur = metrics.curves(err)
    dropped = run.dropped
    known = metrics.valid_boxes(run.gt_xywh) | run.gt_absent
    pred_absent = metrics.predicted_absent(run.boxes_xywh, run.states)
    absent = metrics.absent_counts(pred_absent, run.gt_absent, known & ~dropped)
    # A dropped frame is "no answer": it cannot detect a loss nor hold the target.
    loss = metrics.loss_delays(pred_absent & ~dropped, run.gt_absent)
    reacq = metrics.reacquire_delays(run.boxes_xywh, run.states, run.gt_xywh, run.gt_absent)
    events = metrics.event_scores(run.event_tuples(), run.gt_xywh, run.gt_absent,
                                  config.event_tolerance)
    visible_scored = (err.status == metrics.SCORED) & ~run.gt_absent
    counts = np.bincount(err.status, minlength=len(metrics.STATUS_NAMES))
    tracker_s = float(np.nansum(run.times_s))
    processed = int((~np.isnan(run.times_s)).sum())
    block = {
        'name': run.name, 'dataset': run.dataset, 'text': run.text,
        **_figures(cur, float(err.iou[visible_scored].mean()) if visible_scored.any() else None,
                   absent, loss, reacq, events, config),
        'frames_total': len(run),
        'frames_scored': int(counts[metrics.SCORED]),
        'frames_dropped': int(counts[metrics.DROPPED]),
        'frames_excluded': int(counts[metrics.EXCLUDED_ABSENT] + counts[metrics.EXCLUDED_NO_GT]),
        'frames_in_curves': int(err.in_curve.sum()),
        'drop_reasons': dict(Counter(run.drop_reasons.values())),
        'tracker_fps': processed / tracker_s if tracker_s > 0 else None,
        'tracker_s': tracker_s, 'wall_s': run.wall_s,
    }
    return SequenceScore(block=block, curves=cur, absent=absent, loss_delays=loss,
                         reacquire_delays=reacq, events=events)


def summarize(runs: list[SequenceRun], config: EvalConfig = EvalConfig(),
              skipped: Iterable[tuple[str, str]] = ()) -> dict:
    """One configuration's JSON block: overall figures, curves and per-sequence entries.

    Success, precision and normalised precision average the per-sequence curves (pytracking);
    absent precision/recall/F1 pool the frame counts of all sequences; frame counts add up.
    """
    skipped = list(skipped)
    scores = [score_run(r, config) for r in runs]
    mean = metrics.mean_curves([s.curves for s in scores])
    absent = sum((s.absent for s in scores), metrics.Counts())
    loss = [d for s in scores for d in s.loss_delays]
    reacq = [d for s in scores for d in s.reacquire_delays]
    ev = {}
    for key in ('lost', 'refound'):
        tot = {k: sum(s.events[key][k] for s in scores)
               for k in ('events', 'correct', 'transitions', 'recalled')}
        tot['precision'] = tot['correct'] / tot['events'] if tot['events'] else None
        tot['recall'] = tot['recalled'] / tot['transitions'] if tot['transitions'] else None
        ev[key] = tot
    blocks = [s.block for s in scores]
    ious = [b['mean_iou'] for b in blocks if b['mean_iou'] is not None]
    tracker_s = sum(b['tracker_s'] for b in blocks)
    processed = sum(int((~np.isnan(r.times_s)).sum()) for r in runs)
    frames = {k: sum(b[k] for b in blocks) for k in
              ('frames_total', 'frames_scored', 'frames_dropped', 'frames_excluded')}
    drop_reasons = Counter()
    for b in blocks:
        drop_reasons.update(b['drop_reasons'])
    return {
        **_figures(mean, float(np.mean(ious)) if ious else None, absent, loss, reacq, ev,
                   config),
        **frames,
        'drop_reasons': dict(drop_reasons),
        'sequences_total': len(runs) + len(skipped),
        'sequences_scored': sum(s.curves is not None for s in scores),
        'tracker_fps': processed / tracker_s if tracker_s > 0 else None,
        'curves': {
            'overlap_thresholds': metrics.OVERLAP_THRESHOLDS.tolist(),
            'success': mean.success.tolist() if mean else None,
            'center_thresholds_px': metrics.CENTER_THRESHOLDS.tolist(),
            'precision': mean.precision.tolist() if mean else None,
            'norm_center_thresholds': metrics.NORM_CENTER_THRESHOLDS.tolist(),
            'norm_precision': mean.norm_precision.tolist() if mean else None,
        },
        'sequences': {b['name']: b for b in blocks},
        'skipped': [{'name': n, 'reason': r} for n, r in skipped],
    }

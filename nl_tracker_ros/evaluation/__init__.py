"""Offline evaluation: run a tracker over sequences, write the results, score them, report.

Running is apart from analysis, as in pytracking:

- ``runner``: :class:`EvalConfig`, :func:`run_sequence`, :func:`run_batch` -> :class:`SequenceRun`.
- ``results``: a run to the pytracking text layout and back (:func:`write_results`,
  :func:`run_from_results`).
- ``scoring``: the figures of one run (:func:`score_run`) and of a batch (:func:`summarize`).
- ``metrics``: the per-frame and curve arithmetic, after pytracking's analysis and TNL2K's toolkit.
- ``report``: JSON, plots, overlays and the text summary (imported on its own; it needs
  matplotlib for plots).

Sequences to run come from :mod:`nl_tracker_ros.inputs`.
"""
from nl_tracker_ros.evaluation.results import (frame_status, read_boxes, run_from_results,
                                               write_results)
from nl_tracker_ros.evaluation.runner import (NO_STATE, EvalConfig, LazySequence, SequenceRun,
                                              empty_run, record, run_batch, run_sequence)
from nl_tracker_ros.evaluation.scoring import SequenceScore, score_run, summarize

__all__ = ['NO_STATE', 'EvalConfig', 'LazySequence', 'SequenceRun', 'SequenceScore', 'empty_run',
           'frame_status', 'read_boxes', 'record', 'run_batch', 'run_from_results',
           'run_sequence', 'score_run', 'summarize', 'write_results']

"""Results files: a run written in the pytracking text layout, and read back.

Existing toolkits read them: ``<name>.txt`` with one tab-separated ``x y w h`` line per frame
(``0 0 0 0`` where the tracker gave no box: pytracking's analysis then carries the previous box
forward, our own scoring counts it as a failure), ``<name>_time.txt`` with seconds per frame, plus
``<name>_frames.tsv`` with the state, score and status of each frame.
"""
from __future__ import annotations

import pathlib

import numpy as np

from nl_tracker_ros.errors import InputError
from nl_tracker_ros.evaluation import metrics
from nl_tracker_ros.evaluation.runner import NO_STATE, SequenceRun, empty_run
from nl_tracker_ros.track_types import TrackState


def write_results(run: SequenceRun, out_dir: str | pathlib.Path) -> dict[str, pathlib.Path]:
    """Write one run in the pytracking text layout (see module docstring); returns the paths."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {'boxes': out / f'{run.name}.txt', 'time': out / f'{run.name}_time.txt',
             'frames': out / f'{run.name}_frames.tsv'}
    boxes = np.where(metrics.valid_boxes(run.boxes_xywh)[:, None], run.boxes_xywh, 0.0)
    np.savetxt(paths['boxes'], boxes, delimiter='\t', fmt='%.3f')
    np.savetxt(paths['time'], np.nan_to_num(run.times_s, nan=0.0), fmt='%.6f')
    status = frame_status(run)
    lines = ['frame\tstamp\tstatus\tstate\tscore\ttime_ms\treason']
    for i in range(len(run)):
        st = int(run.states[i])
        state = TrackState(st).name if st != NO_STATE else '-'
        score = '' if np.isnan(run.scores[i]) else f'{run.scores[i]:.4f}'
        ms = '' if np.isnan(run.times_s[i]) else f'{run.times_s[i] * 1e3:.2f}'
        reason = run.drop_reasons.get(i, '').replace('\t', ' ').replace('\n', ' ')
        lines.append(f'{i}\t{run.stamps[i]:.6f}\t{status[i]}\t{state}\t{score}\t{ms}\t{reason}')
    paths['frames'].write_text('\n'.join(lines) + '\n', encoding='utf-8')
    return paths


def read_boxes(path: str | pathlib.Path) -> np.ndarray:
    """Read a pytracking results/ground-truth file (tab or comma); zero-size rows become NaN."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding='utf-8')
    except OSError as exc:
        raise InputError(f'results file {path}: cannot read ({exc.strerror})') from None
    rows = []
    for k, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.replace(',', '\t').split()
        try:
            row = [float(v) for v in parts]
        except ValueError:
            raise InputError(f'results file {path}: line {k} is not numbers: {line!r}') from None
        if len(row) != 4:
            raise InputError(f'results file {path}: line {k}: expected 4 values, got {len(row)}')
        rows.append(row)
    boxes = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    boxes[~metrics.valid_boxes(boxes)] = np.nan
    return boxes


def run_from_results(seq, results_dir: str | pathlib.Path) -> SequenceRun:
    """A run read back from ``<results_dir>/<name>.txt`` (ours or any pytracking tracker's).

    With our ``<name>_frames.tsv`` next to it, states, scores and dropped frames come back too;
    otherwise a frame with a box is TRACKING and a ``0 0 0 0`` line means no box (LOST).
    """
    results_dir = pathlib.Path(results_dir)
    path = results_dir / f'{seq.name}.txt'
    boxes = read_boxes(path)
    n = len(seq)
    if len(boxes) != n:
        raise InputError(f'results file {path}: {len(boxes)} lines for {n} frames')
    run = empty_run(seq, getattr(seq, 'stamps', None))
    run.boxes_xywh[:] = boxes
    held = metrics.valid_boxes(boxes)
    run.states[:] = np.where(held, int(TrackState.TRACKING), int(TrackState.LOST))
    run.scores[:] = held.astype(np.float64)
    run.drop_reasons.clear()
    table = results_dir / f'{seq.name}_frames.tsv'
    if table.is_file():
        rows = [r.split('\t') for r in table.read_text(encoding='utf-8').splitlines()[1:] if r]
        if len(rows) != n:
            raise InputError(f'results file {table}: {len(rows)} rows for {n} frames')
        for i, r in enumerate(rows):
            if r[2] == 'dropped':
                run.drop_reasons[i] = r[6] if len(r) > 6 and r[6] else 'dropped'
                run.states[i], run.scores[i] = NO_STATE, np.nan
                continue
            if r[3] in TrackState.__members__:
                run.states[i] = int(TrackState[r[3]])
            run.scores[i] = float(r[4]) if r[4] else np.nan
            run.times_s[i] = float(r[5]) / 1e3 if r[5] else np.nan
    return run


def frame_status(run: SequenceRun, convention: str = 'pytracking') -> list[str]:
    """One status word per frame: scored, dropped, or excluded (and why)."""
    err = metrics.frame_errors(run.boxes_xywh, run.gt_xywh, run.gt_absent, run.dropped,
                               convention, run.held)
    return [metrics.STATUS_NAMES[s] for s in err.status]

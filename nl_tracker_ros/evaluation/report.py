"""Evaluation reports: one JSON with every number, plots, overlays of the worst sequences, text.

Input is one ``evaluation.summarize`` block per configuration (e.g. ``{'recovery-on': ...,
'recovery-off': ...}``) plus, for overlays, the runs behind them. The JSON carries the headline
keys of the first configuration at its top level and every configuration under
``configurations``, so a single-configuration run and a comparison read the same way.
"""
from __future__ import annotations

import json
import math
import pathlib

import cv2
import numpy as np

from nl_tracker_ros.evaluation.metrics import valid_boxes
from nl_tracker_ros.evaluation.runner import NO_STATE, EvalConfig, SequenceRun
from nl_tracker_ros.track_types import HOLDING_STATES, TrackState

HEADLINE_KEYS = ('auc', 'precision20', 'norm_precision', 'mean_iou', 'absent_precision',
                 'absent_recall', 'absent_f1', 'frames_total', 'frames_scored',
                 'frames_dropped', 'frames_excluded', 'tracker_fps')
FIRST_FRAME_NOTE = {
    'nl': 'language-only initialisation: frame 1 is scored on the tracker\'s own box (common '
          'toolkits overwrite frame 1 with the ground truth; we do not)',
    'nl+box': 'initialised with language and the frame-1 ground-truth box; frame 1 is scored '
              'on the tracker\'s own output, not overwritten',
}
SHORT_NOTE = {'nl': "language-only init: frame 1 is scored on the tracker's own box",
              'nl+box': 'init with language + frame-1 GT box; frame 1 not overwritten'}
GT_COLOUR = (0, 220, 0)     # RGB
RUN_COLOURS = ((255, 60, 60), (60, 140, 255), (255, 200, 0), (220, 0, 220), (0, 220, 220))


def build_report(results: dict[str, dict], config: EvalConfig = EvalConfig(),
                 extra: dict | None = None) -> dict:
    """The report dict: headline keys of the first configuration plus every block."""
    if not results:
        raise ValueError('build_report: expected at least one configuration')
    primary = next(iter(results))
    report = {k: results[primary].get(k) for k in HEADLINE_KEYS}
    report.update({
        'primary': primary,
        'convention': config.convention,
        'init': config.init,
        'first_frame': FIRST_FRAME_NOTE[config.init],
        'definitions': {
            'auc': 'mean of the success curve over IoU thresholds linspace(0, 1, 21), IoU > t',
            'precision20': 'fraction of frames with centre error <= 20 px',
            'norm_precision': 'fraction of frames with centre error / GT size <= 0.2',
            'overall': 'curves averaged over sequences (pytracking); absent counts pooled',
            'convention': ('pytracking: absent frames stay in the denominator and fail; '
                           'tnl2k: absent frames are removed from scoring; absent-aware: '
                           'an absent frame succeeds when the target is not held and fails '
                           'when it is, and only held boxes are scored'),
            'frames': ('frames_total = frames_scored + frames_dropped + frames_excluded; '
                       'dropped frames count as failures in the curves'),
            'absent': 'a frame is predicted absent when the target is not held (no box, '
                      'or a state other than TRACKING/REFOUND)',
            'boxes': 'the held box, or while the target is not held its unconfirmed candidate',
        },
        'configurations': results,
    })
    if extra:
        report.update(extra)
    return report


def _json_safe(x):
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.ndarray):
        return _json_safe(x.tolist())
    return x


def write_json(report: dict, path: str | pathlib.Path) -> pathlib.Path:
    """Write ``report`` as strict JSON (NaN and inf become null)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_safe(report), indent=1, allow_nan=False) + '\n',
                    encoding='utf-8')
    return path


def plot_curves(results: dict[str, dict], out_dir: str | pathlib.Path,
                title: str = '') -> dict[str, pathlib.Path]:
    """Success, precision and normalised-precision PNGs, one line per configuration."""
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specs = (
        ('success', 'overlap_thresholds', 'auc', 'AUC', 'Overlap threshold', 'Success rate'),
        ('precision', 'center_thresholds_px', 'precision20', 'P@20',
         'Centre error threshold [px]', 'Precision'),
        ('norm_precision', 'norm_center_thresholds', 'norm_precision', 'nP@0.2',
         'Normalised centre error threshold', 'Normalised precision'),
    )
    paths = {}
    for key, xkey, score_key, label, xlabel, ylabel in specs:
        fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
        order = sorted(results, key=lambda n: -(results[n].get(score_key) or -1))
        for i, name in enumerate(order):
            block = results[name]
            y = block['curves'][key]
            if y is None:
                continue
            score = block.get(score_key)
            ax.plot(block['curves'][xkey], np.asarray(y) * 100, lw=2,
                    label=f'{name} [{label}: {100 * score:.1f}]' if score is not None else name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f'{ylabel} [%]')
        ax.set_ylim(0, 100)
        ax.grid(True, alpha=0.3)
        ax.set_title(f'{ylabel} plot' + (f' - {title}' if title else ''))
        if ax.get_lines():
            ax.legend(loc='lower left' if key == 'success' else 'lower right', fontsize=9)
        fig.tight_layout()
        paths[key] = out / f'{key}.png'
        fig.savefig(paths[key])
        plt.close(fig)
    return paths


def worst_sequences(block: dict, count: int = 3) -> list[str]:
    """Names of the ``count`` sequences with the lowest AUC (unscored ones left out)."""
    seqs = [(b['auc'], n) for n, b in block['sequences'].items() if b['auc'] is not None]
    return [n for _, n in sorted(seqs)[:count]]


def _draw(frame: np.ndarray, index: int, gt_box, gt_absent: bool,
          runs: list[tuple[str, SequenceRun]]) -> np.ndarray:
    img = np.array(frame, dtype=np.uint8, copy=True, order="C")   # never draw on the source
    if gt_box is not None and valid_boxes(gt_box) and not gt_absent:
        x, y, w, h = (int(round(v)) for v in gt_box)
        cv2.rectangle(img, (x, y), (x + w, y + h), GT_COLOUR, 2)
    lines = [f'#{index}' + ('  GT: absent' if gt_absent else '')]
    for k, (name, run) in enumerate(runs):
        colour = RUN_COLOURS[k % len(RUN_COLOURS)]
        box = run.boxes_xywh[index]
        st = int(run.states[index])
        if valid_boxes(box):
            x, y, w, h = (int(round(v)) for v in box)
            held = st in HOLDING_STATES
            # an unconfirmed candidate (target not held) is drawn thin
            cv2.rectangle(img, (x, y), (x + w, y + h), colour, 2 if held else 1)
        state = TrackState(st).name if st != NO_STATE else 'DROPPED'
        lines.append((f'{name}: {state}', colour))
    scale = max(0.4, img.shape[1] / 1000)
    step = int(round(30 * scale))
    for k, item in enumerate(lines):
        text, colour = (item, (255, 255, 255)) if isinstance(item, str) else item
        org = (6, 4 + step * (k + 1))
        cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)
    return img


def overlay_frames(runs: list[tuple[str, SequenceRun]]):
    """Yield (index, RGB frame with GT in green and each run's box); unreadable frames skipped."""
    first = runs[0][1]
    for i in range(len(first)):
        try:
            frame = first.source.load_frame(i)
        except Exception:   # noqa: BLE001 - an unreadable frame is already reported as dropped
            continue
        yield i, _draw(frame, i, first.gt_xywh[i], bool(first.gt_absent[i]), runs)


def write_overlay(runs: list[tuple[str, SequenceRun]], path: str | pathlib.Path,
                  fps: float = 15.0, strip_frames: int = 8) -> pathlib.Path:
    """Write an mp4 overlay of one sequence; falls back to a PNG image strip if no codec.

    ``runs`` are (configuration name, run) of the same sequence; ``path`` is the mp4 path (the
    strip gets the same stem with ``.png``). Returns the path actually written.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if runs[0][1].source is None:
        raise ValueError(f'overlay {path}: the run has no frame source')
    writer = None
    ok = False
    try:
        for _, img in overlay_frames(runs):
            if writer is None:
                h, w = img.shape[:2]
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, (w, h))
                if not writer.isOpened():
                    break
            if img.shape[:2] != (h, w):
                img = cv2.resize(img, (w, h))
            writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            ok = True
    finally:
        if writer is not None:
            writer.release()
    if ok and path.exists() and path.stat().st_size > 0:
        return path
    path.unlink(missing_ok=True)
    return write_strip(runs, path.with_suffix('.png'), strip_frames)


def write_strip(runs: list[tuple[str, SequenceRun]], path: str | pathlib.Path,
                count: int = 8, width: int = 320) -> pathlib.Path:
    """A PNG grid of ``count`` overlay frames spread over the sequence (4 per row)."""
    path = pathlib.Path(path)
    n = len(runs[0][1])
    wanted = set(np.linspace(0, max(n - 1, 0), min(count, n)).round().astype(int).tolist())
    tiles = []
    for i, img in overlay_frames(runs):
        if i in wanted:
            h = int(round(img.shape[0] * width / img.shape[1]))
            tiles.append(cv2.resize(img, (width, h)))
    if not tiles:
        raise ValueError(f'overlay {path}: no readable frames')
    h = tiles[0].shape[0]
    tiles = [cv2.resize(t, (width, h)) for t in tiles]
    while len(tiles) % 4 and len(tiles) > 4:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[k:k + 4]) for k in range(0, len(tiles), 4)]
    grid = np.vstack(rows) if len(rows) > 1 else rows[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    return path


def write_per_sequence(results: dict[str, dict], path: str | pathlib.Path) -> pathlib.Path:
    """A TSV with one row per sequence and AUC / P@20 / absent F1 columns per configuration."""
    path = pathlib.Path(path)
    names = list(dict.fromkeys(n for b in results.values() for n in b['sequences']))
    keys = ('auc', 'precision20', 'absent_f1')
    head = ['sequence'] + [f'{c}:{k}' for c in results for k in keys]
    rows = ['\t'.join(head)]
    for n in names:
        cells = [n]
        for block in results.values():
            seq = block['sequences'].get(n, {})
            cells += ['' if seq.get(k) is None else f'{seq[k]:.4f}' for k in keys]
        rows.append('\t'.join(cells))
    path.write_text('\n'.join(rows) + '\n', encoding='utf-8')
    return path


def _pr(p, r) -> str:
    return '/'.join('-' if x is None else f'{100 * x:.0f}' for x in (p, r))


def _pct(x) -> str:
    return '   -' if x is None else f'{100 * x:5.1f}'


def summary_text(report: dict, paths: dict | None = None, worst: int = 3) -> str:
    """A one-screen text summary of ``report`` (and where its files are)."""
    blocks = report['configurations']
    first = blocks[report['primary']]
    lines = [f"Evaluation: {first['sequences_scored']}/{first['sequences_total']} sequences "
             f"scored, {first['frames_total']} frames, convention {report['convention']}",
             '  ' + SHORT_NOTE.get(report['init'], ''),
             '',
             f"{'configuration':<16}{'AUC':>6}{'P@20':>6}{'nP':>6}{'absF1':>6}"
             f"{'lost<=5':>8}{'back<=10':>9}{'fps':>8}  scored/dropped/excluded"]
    for name, b in blocks.items():
        fps = b.get('tracker_fps')
        lines.append(
            f"{name[:15]:<16}{_pct(b['auc']):>6}{_pct(b['precision20']):>6}"
            f"{_pct(b['norm_precision']):>6}{_pct(b['absent_f1']):>6}"
            f"{_pct(b['loss_delay'].get('within5')):>8}"
            f"{_pct(b['reacquire_delay'].get('within10')):>9}"
            f" {(f'{fps:.1f}' if fps else '-'):>7}  "
            f"{b['frames_scored']}/{b['frames_dropped']}/{b['frames_excluded']}")
    lines.append('')
    lines.append(f"{'lost/re-found':<16}{'absent P/R':>11}{'LOST ev P/R':>13}"
                 f"{'REFOUND ev P/R':>16}{'median delay lost/back':>24}")
    for name, b in blocks.items():
        ev, ld, rd = b['events'], b['loss_delay'], b['reacquire_delay']
        delays = '/'.join('-' if d.get('median') is None else f"{d['median']:.0f}"
                          for d in (ld, rd))
        lines.append(f"{name[:15]:<16}{_pr(b['absent_precision'], b['absent_recall']):>11}"
                     f"{_pr(ev['lost']['precision'], ev['lost']['recall']):>13}"
                     f"{_pr(ev['refound']['precision'], ev['refound']['recall']):>16}"
                     f"{delays + ' frames':>24}")
    names = worst_sequences(first, worst)
    if names:
        lines.append('')
        lines.append(f"Worst sequences ({report['primary']}):")
        for n in names:
            s = first['sequences'][n]
            lines.append(f"  {n[:30]:<30} AUC {_pct(s['auc'])}  P@20 {_pct(s['precision20'])}"
                         f"  \"{s['text'][:40]}\"")
    reasons = first.get('drop_reasons') or {}
    if reasons:
        lines.append('Dropped frames: ' + '; '.join(
            f'{c} x {r[:60]}' for r, c in sorted(reasons.items(), key=lambda kv: -kv[1])[:3]))
    for item in first.get('skipped', [])[:5]:
        lines.append(f"Skipped {item['name']}: {item['reason'][:90]}")
    if paths:
        lines.append('')
        for key, p in paths.items():
            lines.append(f'{key:<16}{p}')
    return '\n'.join(lines)


def write_report(out_dir: str | pathlib.Path, results: dict[str, dict],
                 runs: dict[str, list[SequenceRun]] | None = None,
                 config: EvalConfig = EvalConfig(), worst: int = 3,
                 json_path: str | pathlib.Path | None = None, extra: dict | None = None
                 ) -> tuple[dict, dict[str, pathlib.Path], str]:
    """Write JSON, plots, worst-sequence overlays and summary.txt into ``out_dir``.

    Returns (report dict, paths by name, summary text).
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(results, config, extra)
    paths: dict[str, pathlib.Path] = {}
    paths['json'] = write_json(report, json_path or out / 'report.json')
    paths.update(plot_curves(results, out))
    if runs:
        primary = report['primary']
        for k, name in enumerate(worst_sequences(results[primary], worst)):
            same = [(c, r) for c, rs in runs.items() for r in rs if r.name == name]
            if same and same[0][1].source is not None:
                paths[f'overlay{k + 1}'] = write_overlay(same, out / f'overlay_{name}.mp4',
                                                         fps=min(config.fps, 30.0))
    paths['per_sequence'] = write_per_sequence(results, out / 'per_sequence.tsv')
    text = summary_text(report, paths, worst)
    paths['summary'] = out / 'summary.txt'
    paths['summary'].write_text(text + '\n', encoding='utf-8')
    return report, paths, text

"""``nl-tracker track``: follow a described target through a video, image folder or bag."""
from __future__ import annotations

import argparse
import pathlib
import sys

HELP = 'track a described target in a video, image folder or bag: boxes and an overlay'
NEVER_ACQUIRED = 3   # exit status when the target was never acquired
EPILOG = (f'exit status: 0 the target was acquired; 1 no frame could be tracked; 2 bad input '
          f'or settings (one line says which); {NEVER_ACQUIRED} the target was never acquired')


def _box(text: str) -> tuple[float, ...]:
    """x,y,w,h from the command line; argparse prefixes errors with 'argument --box:'."""
    from nl_tracker_ros.boxes import validate_box_xywh
    from nl_tracker_ros.errors import InputError

    try:
        values = tuple(float(v) for v in text.replace(' ', '').split(','))
        return validate_box_xywh(values, name='x,y,w,h')
    except ValueError as exc:   # float() or InputError
        detail = str(exc) if isinstance(exc, InputError) else f'expected numbers, got {text!r}'
        raise argparse.ArgumentTypeError(detail) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``nl-tracker track``."""
    from nl_tracker_ros.commands._tracking import add_tracker_arguments

    parser.epilog = EPILOG
    parser.add_argument('input', help='video file, image folder (or LaSOT-style sequence '
                                      'folder) or rosbag2')
    parser.add_argument('--text', help='what to follow, e.g. "the person in the red jacket" '
                                       '(default: the command recorded in a bag)')
    parser.add_argument('--box', type=_box, metavar='X,Y,W,H',
                        help='optional first-frame box in pixels, next to the text')
    parser.add_argument('--out', metavar='DIR',
                        help='output folder (default: runs/track/<input name>)')
    parser.add_argument('--recovery', choices=('on', 'off'), default='on',
                        help='lost/re-found handling (default: on)')
    parser.add_argument('--fps', type=float, default=30.0,
                        help='frame rate for stamps where the input has none (default 30)')
    parser.add_argument('--no-video', action='store_true', help='skip the overlay video')
    parser.add_argument('--quiet', action='store_true', help='do not print events as they come')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    add_tracker_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Track, print events live, write ``<name>.txt`` (pytracking) and an overlay video."""
    from tqdm import tqdm

    from nl_tracker_ros.boxes import validate_box_xywh
    from nl_tracker_ros.commands._tracking import make_tracker
    from nl_tracker_ros.errors import InputError
    from nl_tracker_ros.evaluation import EvalConfig, run_sequence, write_results
    from nl_tracker_ros.evaluation.report import write_overlay
    from nl_tracker_ros.inputs import open_input

    source = open_input(args.input, args.text or '', fps=args.fps)
    if not source.text.strip():
        raise InputError(f'{args.input}: no --text given and the input carries no command')
    if args.box is not None:     # checked against the first frame before any model work
        height, width = source.load_frame(0).shape[:2]
        validate_box_xywh(args.box, (width, height), name='--box')
    out = pathlib.Path(args.out or pathlib.Path('runs', 'track', source.name))
    tracker = make_tracker(args, recovery=args.recovery == 'on')
    bar = tqdm(total=len(source), unit='frame', desc='track', leave=False,
               disable=args.no_progress)
    seen = [0]

    def show(run, index):
        bar.update(1)
        if args.quiet:
            return
        for frame, e in run.events[seen[0]:]:
            box = '' if e.box_xywh is None else ' box ' + ','.join(f'{v:.0f}' for v in e.box_xywh)
            bar.write(f'[{frame:5d} t={e.stamp:8.3f}] {e.kind.name:<16} {e.reason}{box}')
        seen[0] = len(run.events)

    print(f'tracking "{source.text}" in {args.input} ({len(source)} frames, '
          f'recovery {args.recovery})', flush=True)
    try:
        run = run_sequence(tracker, source, EvalConfig(fps=args.fps), on_frame=show,
                           init_box=args.box)
    finally:
        bar.close()
    paths = write_results(run, out)
    if not args.no_video:
        paths['overlay'] = write_overlay([(f'recovery {args.recovery}', run)],
                                         out / f'{run.name}_overlay.mp4', fps=min(args.fps, 30))
    print('\n'.join(summary_lines(run, EvalConfig(fps=args.fps))))
    for key, p in paths.items():
        print(f'  {key:<8} {p}')
    processed = len(run) - len(run.drop_reasons)
    if processed == 0:
        reason = next(iter(run.drop_reasons.values()), 'empty input')
        print(f'nl-tracker track: no frame could be tracked ({reason})', file=sys.stderr)
        return 1
    if not acquired(run):
        print(f'nl-tracker track: the target was never acquired: "{run.text}" matched nothing '
              f'in {processed} frames', file=sys.stderr)
        return NEVER_ACQUIRED
    return 0


def acquired(run) -> bool:
    """Whether the run ever held the target (an ACQUIRED event)."""
    from nl_tracker_ros.track_types import EventKind
    return any(e.kind == EventKind.ACQUIRED for _, e in run.events)


def summary_lines(run, config) -> list[str]:
    """What happened: frames tracked and held, the events by kind, and the score where the
    input has ground truth."""
    from collections import Counter

    import numpy as np

    from nl_tracker_ros.evaluation import summarize
    from nl_tracker_ros.track_types import EventKind

    processed = len(run) - len(run.drop_reasons)
    fps = processed / run.wall_s if run.wall_s > 0 else 0.0
    lines = [f'{processed}/{len(run)} frames tracked at {fps:.1f} fps; '
             f'{len(run.drop_reasons)} dropped']
    first = next((f for f, e in run.events if e.kind == EventKind.ACQUIRED), None)
    held = int(run.held.sum())
    lines.append('target never acquired' if first is None else
                 f'target acquired at frame {first}, held on {held} of {len(run)} frames')
    kinds = Counter(e.kind.name for _, e in run.events)
    lines.append('events: ' + (', '.join(f'{k} {n}' for k, n in kinds.items()) or 'none'))
    if np.isfinite(run.gt_xywh).any() or run.gt_absent.any():
        s = summarize([run], config)

        def pct(x):
            return '-' if x is None else f'{100 * x:.1f}'
        lines.append(f"score against the recorded ground truth: success AUC {pct(s['auc'])}, "
                     f"precision@20 {pct(s['precision20'])}, absent-frame F1 "
                     f"{pct(s['absent_f1'])}")
    return lines

"""``nl-tracker track``: follow a described target through a video, image folder or bag."""
from __future__ import annotations

import argparse
import pathlib
import sys

HELP = 'track a described target in a video, image folder or bag: boxes and an overlay'


def _box(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.replace(' ', '').split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(f'--box: expected x,y,w,h numbers, got {text!r}')
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f'--box: expected 4 numbers x,y,w,h, got {len(values)}')
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``nl-tracker track``."""
    from nl_tracker_ros.commands._tracking import add_tracker_arguments

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
    add_tracker_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Track, print events live, write ``<name>.txt`` (pytracking) and an overlay video."""
    from nl_tracker_ros.commands._tracking import make_tracker
    from nl_tracker_ros.errors import InputError
    from nl_tracker_ros.evaluation import EvalConfig, open_input, run_sequence, write_results
    from nl_tracker_ros.report import write_overlay

    source = open_input(args.input, args.text or '', fps=args.fps)
    if not source.text.strip():
        raise InputError(f'{args.input}: no --text given and the input carries no command')
    out = pathlib.Path(args.out or pathlib.Path('runs', 'track', source.name))
    tracker = make_tracker(args, recovery=args.recovery == 'on')
    seen = [0]

    def show(run, index):
        for frame, e in run.events[seen[0]:]:
            box = '' if e.box_xywh is None else ' box ' + ','.join(f'{v:.0f}' for v in e.box_xywh)
            print(f'[{frame:5d} t={e.stamp:8.3f}] {e.kind.name:<16} {e.reason}{box}')
        seen[0] = len(run.events)

    print(f'tracking "{source.text}" in {args.input} ({len(source)} frames, '
          f'recovery {args.recovery})')
    run = run_sequence(tracker, source, EvalConfig(fps=args.fps),
                       on_frame=None if args.quiet else show, init_box=args.box)
    paths = write_results(run, out)
    if not args.no_video:
        paths['overlay'] = write_overlay([(f'recovery {args.recovery}', run)],
                                         out / f'{run.name}_overlay.mp4', fps=min(args.fps, 30))
    processed = len(run) - len(run.drop_reasons)
    fps = processed / run.wall_s if run.wall_s > 0 else 0.0
    print(f'{processed}/{len(run)} frames tracked at {fps:.1f} fps; '
          f'{len(run.drop_reasons)} dropped')
    for key, p in paths.items():
        print(f'  {key:<8} {p}')
    if processed == 0:
        print('nl-tracker track: no frame could be tracked', file=sys.stderr)
        return 1
    return 0

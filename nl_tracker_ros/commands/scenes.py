"""``nl-tracker scenes``: generate language-tracking sequences with exact ground truth."""
from __future__ import annotations

import argparse
import sys

HELP = 'generate synthetic language-tracking sequences (LaSOT layout, optional bags)'


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected WIDTHxHEIGHT such as 640x480, '
                                         f'got {text!r}') from None
    if w < 64 or h < 64:
        raise argparse.ArgumentTypeError(f'expected at least 64x64, got {text!r}')
    return w, h


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``nl-tracker scenes``."""
    from nl_tracker_ros.scenes.recipe import PRESETS
    parser.add_argument('--out', required=True, help='output folder (created if missing)')
    parser.add_argument('--count', type=int, default=10, help='number of sequences (10)')
    parser.add_argument('--seed', type=int, default=0, help='seed; same seed, same bytes (0)')
    parser.add_argument('--preset', default='train', choices=sorted(PRESETS),
                        help='difficulty mix (train)')
    parser.add_argument('--config', metavar='YAML',
                        help='a RecipeMix as YAML (fields of nl_tracker_ros.scenes.RecipeMix); '
                             'replaces --preset')
    parser.add_argument('--frames', type=int, help='frames per sequence (default: from mix)')
    parser.add_argument('--size', type=_size, default=(640, 480), metavar='WxH',
                        help='frame size (640x480)')
    parser.add_argument('--bags', nargs='?', const='sqlite3', choices=('sqlite3', 'mcap'),
                        help='also write OUT/bags/<seq> rosbag2 (storage: sqlite3 or mcap)')
    parser.add_argument('--compressed', action='store_true',
                        help='bags carry the JPEG frames as CompressedImage (smaller)')
    parser.add_argument('--workers', type=int, default=1,
                        help='processes; the output does not depend on it (1)')
    parser.add_argument('--quiet', action='store_true', help='no progress lines')


def run(args: argparse.Namespace) -> int:
    """Generate the sequences and print where they are."""
    from nl_tracker_ros.config import from_dict, load_yaml
    from nl_tracker_ros.scenes.recipe import RecipeMix
    from nl_tracker_ros.scenes.writer import timed_generate
    mix = from_dict(RecipeMix, load_yaml(args.config), 'scenes config') if args.config \
        else args.preset

    def progress(done, count, name):
        if not args.quiet:
            print(f'[{done}/{count}] {name}', file=sys.stderr, flush=True)

    seqs, seconds = timed_generate(args.out, args.count, args.seed, mix, args.size[0],
                                   args.size[1], args.frames, args.bags, args.compressed,
                                   args.workers, progress)
    frames = sum(len(s) for s in seqs)
    absent = sum(int(s.absent.sum()) for s in seqs)
    print(f'wrote {len(seqs)} sequences, {frames} frames ({absent} with the target absent) '
          f'to {args.out} in {seconds:.1f} s ({frames / max(seconds, 1e-9):.0f} frames/s)')
    return 0

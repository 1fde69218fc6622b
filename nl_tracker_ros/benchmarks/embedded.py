"""Per-frame cost of the embedded model through the Tracker, at 640x480 (camera rate: 25 FPS).

Run: ``python -m nl_tracker_ros.benchmarks.embedded [--threads 2] [--frames 150]``.

Builds the default tracker (``jointnlt-compact`` with its shipped weights), generates one
held-out scene at 640x480 and times ``Tracker.update`` on every frame (grounding frame apart),
without and with the lost/re-found handling. Prints median, p90 and mean milliseconds, the FPS
of the median, and the median of every stage the tracker reports.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np


def time_tracker(tracker, frames: list[np.ndarray], text: str) -> dict:
    """Milliseconds of ``update`` per frame after the grounding frame, and stage medians."""
    tracker.set_command(text, 0.0)
    t0 = time.perf_counter()
    tracker.update(frames[0], 0.0)
    ground_ms = 1000.0 * (time.perf_counter() - t0)
    times, stages = [], {}
    for i, image in enumerate(frames[1:], 1):
        t0 = time.perf_counter()
        result = tracker.update(image, i / 30.0)
        times.append(1000.0 * (time.perf_counter() - t0))
        for k, v in result.timing_ms.items():
            stages.setdefault(k, []).append(v)
    times.sort()
    return {'ground_ms': ground_ms, 'median_ms': statistics.median(times),
            'p90_ms': times[int(0.9 * (len(times) - 1))], 'mean_ms': statistics.fmean(times),
            'stages': {k: statistics.median(v) for k, v in stages.items()}}


def main(argv: list[str] | None = None) -> int:
    """Print the table; returns an exit code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    ap.add_argument('--frames', type=int, default=150)
    ap.add_argument('--seed', type=int, default=30000, help='scene seed (held-out range)')
    ap.add_argument('--no-recovery', action='store_true', help='only the plain tracker')
    args = ap.parse_args(argv)
    from nl_tracker_ros.recovery.config import RecoveryConfig
    from nl_tracker_ros.scenes.writer import generate
    from nl_tracker_ros.tracker import TrackerConfig, build_tracker

    with tempfile.TemporaryDirectory() as tmp:
        seq = generate(tmp, 1, args.seed, 'heldout', 640, 480, args.frames)[0]
        frames = [seq.load_frame(i) for i in range(len(seq))]
    for n in args.threads:
        cfg = TrackerConfig(device='cpu', threads=n)
        plain = build_tracker(cfg, 'cpu')
        variants = [('plain', plain)]
        if not args.no_recovery:   # the shipped switch with the shipped weights
            variants.append(('recovery', build_tracker(cfg, 'cpu', RecoveryConfig())))
        for name, tracker in variants:
            r = time_tracker(tracker, frames, seq.text)
            stages = '  '.join(f'{k} {v:.1f}' for k, v in r['stages'].items())
            fps = 1000.0 / r['median_ms']
            print(f'{name:9s} threads {n}: {r["median_ms"]:.1f} ms median ({fps:.0f} FPS), '
                  f'p90 {r["p90_ms"]:.1f}, mean {r["mean_ms"]:.1f}, grounding frame '
                  f'{r["ground_ms"]:.0f} ms | stages (median ms): {stages}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

"""Overhead of the offline evaluation over the tracker itself (aim: <= 10 %).

Run: ``python -m nl_tracker_ros.benchmarks.eval_overhead [--preset jointnlt-compact]
[--weights FILE] [--frames 150] [--size 640x480] [--repeats 2] [--threads 2] [--prefetch 4]``.

Generates one scene sequence (JPEG frames on disk) and runs two identical trackers side by side,
frame by frame, so both see the same load on a shared machine:

- tracker B goes through the evaluation: ``run_sequence`` (decoding from disk, prefetched in a
  thread unless ``--prefetch 0``), then ``score_run`` and ``write_results``;
- tracker A, built the same way (same weights or the same seed), runs alone on frames decoded
  beforehand; its ``update`` is called from B's per-frame callback and timed there.

Evaluation cost = wall time of the evaluation minus the time spent in that callback; tracker
cost = A's time. Overhead = evaluation / tracker - 1.
"""
from __future__ import annotations

import argparse
import pathlib
import tempfile
import time

import torch


def measure(tracker, twin, seq, config, out: pathlib.Path) -> tuple[float, float]:
    """(evaluation seconds, tracker-alone seconds) for one pass over ``seq``."""
    from nl_tracker_ros import evaluation as ev

    frames = [seq.load_frame(i) for i in range(len(seq))]
    twin.reset()
    twin.set_command(seq.text, 0.0)
    spent = [0.0, 0.0]      # [callback wall, twin update wall]

    def alongside(run, i):
        t0 = time.perf_counter()
        twin.update(frames[i], i / config.fps)
        spent[1] += time.perf_counter() - t0
        spent[0] += time.perf_counter() - t0

    t0 = time.perf_counter()
    run = ev.run_sequence(tracker, seq, config, on_frame=alongside)
    ev.score_run(run, config)
    ev.write_results(run, out)
    total = time.perf_counter() - t0
    return total - spent[0], spent[1]


def main(argv: list[str] | None = None) -> int:
    """Print tracker time, evaluation time and the overhead; returns an exit code."""
    from nl_tracker_ros import evaluation as ev
    from nl_tracker_ros.scenes.writer import generate
    from nl_tracker_ros.tracker import TrackerConfig, build_tracker

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--preset', default='jointnlt-tiny')
    p.add_argument('--weights', default='')
    p.add_argument('--frames', type=int, default=150)
    p.add_argument('--size', default='640x480')
    p.add_argument('--repeats', type=int, default=2)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--prefetch', type=int, default=4)
    p.add_argument('--device', default='cpu')
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split('x'))

    with tempfile.TemporaryDirectory(prefix='eval_overhead_') as tmp:
        tmp = pathlib.Path(tmp)
        seq = generate(tmp / 'scenes', 1, seed=11, preset='heldout', width=width,
                       height=height, frames=args.frames)[0]
        pair = []
        for _ in range(2):
            torch.manual_seed(0)        # same random weights when no file is given
            pair.append(build_tracker(TrackerConfig(preset=args.preset, weights=args.weights,
                                                    random_weights=not args.weights),
                                      args.device))
        config = ev.EvalConfig(prefetch=args.prefetch)
        results = [measure(*pair, seq, config, tmp / f'res{k}') for k in range(args.repeats)]
    n = len(seq)
    print(f'preset {args.preset}, {n} frames {width}x{height}, {args.threads} threads, '
          f'prefetch {args.prefetch}')
    for k, (e, a) in enumerate(results):
        print(f'pass {k + 1}: tracker alone {a:7.2f} s ({n / a:6.1f} fps)  evaluation {e:7.2f} s '
              f'({n / e:6.1f} fps)  overhead {100 * (e / a - 1):+6.1f} %')
    e, a = sum(r[0] for r in results), sum(r[1] for r in results)
    print(f'overall overhead {100 * (e / a - 1):+6.1f} %  (acceptance: <= +10 %)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

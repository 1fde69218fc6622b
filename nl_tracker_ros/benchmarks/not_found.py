"""Descriptions that match nothing, and commands switched every frame (bad input).

Run: ``python -m nl_tracker_ros.benchmarks.not_found [--count 10] [--frames 150]``.

Part 1: held-out scenes (seed 10000+, 640x480) are tracked with a description whose colour and
shape belong to no object in the scene ("the purple star" where there is none). Prints, per
scene and overall, the frames on which a box was reported (each one a confident wrong box), the
highest score such a box had, and when NOT_FOUND came.

Part 2: a new command on every frame for ``--switch-frames`` frames; prints the resident memory
and the thread count before and after (a leak shows as growth).
"""
from __future__ import annotations

import argparse
import os
import threading

import numpy as np

from nl_tracker_ros.benchmarks.node_overhead import rss_mb
from nl_tracker_ros.track_types import EventKind


def unmatched_description(plan, rng: np.random.Generator, words: str = 'colour-kind') -> str:
    """A description that fits no object of ``plan`` (``scenes.grammar.unmatched``)."""
    from nl_tracker_ros.scenes.grammar import unmatched
    return unmatched([s.spec for s in (*plan.seen, plan.target_seen)], rng, words)


def run_scene(tracker, frames, text: str, fps: float = 30.0) -> dict:
    """Track ``text`` over ``frames``; count reported boxes and find NOT_FOUND."""
    tracker.set_command(text, 0.0)
    boxes, best, not_found = 0, 0.0, None
    for i, image in enumerate(frames):
        r = tracker.update(image, i / fps)
        if r.box_xywh is not None:
            boxes += 1
            best = max(best, r.score)
        if not_found is None and any(e.kind == EventKind.NOT_FOUND for e in r.events):
            not_found = i / fps
    tracker.reset()
    return {'frames': len(frames), 'boxes': boxes, 'best_score': best, 'not_found_s': not_found}


def main(argv: list[str] | None = None) -> int:
    """Print both parts; returns an exit code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--count', type=int, default=10, help='scenes (10)')
    ap.add_argument('--seed', type=int, default=10000, help='scene seed (held-out range)')
    ap.add_argument('--frames', type=int, default=150)
    ap.add_argument('--switch-frames', type=int, default=600)
    ap.add_argument('--weights', default='', help='model weights (default: shipped)')
    ap.add_argument('--config', metavar='YAML',
                    help='settings: a ROS params file or "tracker:" / "recovery:" sections')
    ap.add_argument('--words', choices=('colour-kind', 'kind'), default='colour-kind',
                    help="unmatched descriptions: 'the purple star' (default) or 'the star'")
    args = ap.parse_args(argv)
    import dataclasses

    from nl_tracker_ros.commands._tracking import configs
    from nl_tracker_ros.scenes import get_mix, plan_scene, render_scene
    from nl_tracker_ros.tracker import build_tracker

    tcfg, rec = configs(args)
    tcfg = dataclasses.replace(tcfg, device='cpu', weights=args.weights or tcfg.weights)
    tracker = build_tracker(tcfg, 'cpu', dataclasses.replace(rec, enabled=True))
    mix, rng = get_mix('heldout'), np.random.default_rng(0)
    total = {'frames': 0, 'boxes': 0, 'found': 0, 'delays': []}
    print('scene                description                 boxes/frames  best score  '
          'NOT_FOUND at')
    last = None
    for i in range(args.count):
        plan = plan_scene(mix.sample(np.random.default_rng([args.seed, i, 0]), 640, 480,
                                     args.frames), args.seed, i)
        frames = [f.image for f in render_scene(plan)]
        text = unmatched_description(plan, rng, args.words)
        r = run_scene(tracker, frames, text)
        total['frames'] += r['frames']
        total['boxes'] += r['boxes']
        if r['not_found_s'] is not None:
            total['found'] += 1
            total['delays'].append(r['not_found_s'])
        at = '-' if r['not_found_s'] is None else f'{r["not_found_s"]:.2f} s'
        print(f'{plan.name:20s} {text:27s} {r["boxes"]:5d}/{r["frames"]:<6d}  '
              f'{r["best_score"]:10.3f}  {at}', flush=True)
        last = (frames, plan.text)
    delays = total['delays']
    print(f'overall: boxes on {total["boxes"]}/{total["frames"]} frames '
          f'({100 * total["boxes"] / max(total["frames"], 1):.1f}%), NOT_FOUND in '
          f'{total["found"]}/{args.count} scenes'
          + (f', median {np.median(delays):.2f} s after the command' if delays else ''))

    frames, text = last
    before_rss, before_threads = rss_mb(os.getpid()), threading.active_count()
    for i in range(args.switch_frames):
        tracker.set_command(text if i % 2 else unmatched_description(plan, rng), i / 30.0)
        tracker.update(frames[i % len(frames)], i / 30.0)
        if i == 49:    # after warm-up: allocator pools and caches are filled
            before_rss, before_threads = rss_mb(os.getpid()), threading.active_count()
    print(f'command switched on each of {args.switch_frames} frames: RSS {before_rss:.0f} -> '
          f'{rss_mb(os.getpid()):.0f} MB (from frame 50), threads {before_threads} -> '
          f'{threading.active_count()}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

"""Throughput of the compact tracker on a machine shared with other processes.

Run: ``python -m nl_tracker_ros.benchmarks.contention [--load 1] [--seconds 10]``.

Every tracker runs ``Tracker.update`` (compact model, shipped weights, lost/re-found handling
on) over one generated 640x480 scene, in a process of its own, for ``--seconds`` after all
of a case's processes are ready; the scene restarts with its command when it ends. Cases:

- ``quiet``: one tracker alone;
- ``N + 1 trackers``: trackers run together (cameras on one robot computer);
- ``beside N busy``: one tracker beside N processes that keep a core busy in plain Python;
- ``beside N torch``: one tracker beside N processes running torch matrix products with
  torch's default threads (another model on the same computer).

Each case prints the frames per second of every tracker and the ratio of their sum to the
quiet tracker's. It runs once with the thread policy of ``nl_tracker_ros.threads`` and once
with torch's own defaults (every core, OpenMP's default wait policy), the behaviour before the
policy, so both come from one run. The busy processes are started and stopped here, and stop
themselves after ``--seconds`` plus a margin should this process die.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

POLICIES = ('ours', 'torch-defaults')
_BUSY_PY = 'import time\nend = time.time() + {s}\nwhile time.time() < end:\n    pass\n'
_BUSY_TORCH = ('import time, torch\nend = time.time() + {s}\na = torch.randn(512, 512)\n'
               'while time.time() < end:\n    a = torch.tanh(a @ a / 512)\n')


def _child(args: argparse.Namespace) -> int:
    """Build a tracker, say 'ready', wait for 'go' on stdin, then run ``args.seconds`` and
    print the frames and seconds as JSON."""
    import numpy as np

    from nl_tracker_ros.recovery.config import RecoveryConfig
    from nl_tracker_ros.tracker import TrackerConfig, build_tracker

    data = np.load(args.frames_file)
    frames, text = list(data['frames']), str(data['text'])
    # torch-defaults: threads as torch chose them at import (every core)
    ours = args.policy == ['ours']
    threads = args.threads if ours else __import__('torch').get_num_threads()
    tracker = build_tracker(TrackerConfig(device='cpu', threads=threads), 'cpu',
                            RecoveryConfig())
    tracker.set_command(text, 0.0)
    for i in range(3):                     # warm-up
        tracker.update(frames[i], i / 30)
    print('ready', flush=True)
    sys.stdin.readline()
    done, i, t0 = 0, 3, time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        if i == len(frames):
            tracker.set_command(text, (done + 3) / 30)
            i = 0
        tracker.update(frames[i], (done + 3) / 30)
        i += 1
        done += 1
    print(json.dumps({'frames': done, 'seconds': time.perf_counter() - t0,
                      'threads': tracker.threads}), flush=True)
    return 0


def _spawn_tracker(frames: str, policy: str, threads: int, seconds: float):
    env = dict(os.environ)
    env.pop('OMP_NUM_THREADS', None)
    if policy == 'ours':
        cmd = [sys.executable, '-m', 'nl_tracker_ros.benchmarks.contention']
    else:
        # torch loads OpenMP before this package can ask for the passive wait policy
        env.pop('OMP_WAIT_POLICY', None)
        cmd = [sys.executable, '-c', 'import torch, runpy, sys; sys.argv[0] = "contention"; '
               'runpy.run_module("nl_tracker_ros.benchmarks.contention", run_name="__main__")']
    cmd += ['--child', '--frames-file', frames, '--policy', policy, '--threads', str(threads),
            '--seconds', repr(seconds)]
    return subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)


def _spawn_busy(kind: str, seconds: float):
    code = (_BUSY_PY if kind == 'busy' else _BUSY_TORCH).format(s=seconds)
    env = dict(os.environ)
    env.pop('OMP_NUM_THREADS', None)
    env.pop('OMP_WAIT_POLICY', None)
    return subprocess.Popen([sys.executable, '-c', code], env=env)


def run_case(frames: str, policy: str, threads: int, trackers: int, busy: str, load: int,
             seconds: float) -> tuple[list[float], list[int]]:
    """Frames per second of each of ``trackers`` trackers run together, beside ``load``
    ``busy`` jobs ('busy' or 'torch'; none when empty), and the threads each used last."""
    procs = [_spawn_tracker(frames, policy, threads, seconds) for _ in range(trackers)]
    others = []
    try:
        for p in procs:
            if p.stdout.readline().strip() != 'ready':
                raise RuntimeError(f'tracker process failed with status {p.wait()}')
        # the jobs stop themselves a while after the case, should this process die
        others = [_spawn_busy(busy, seconds + 60) for _ in range(load if busy else 0)]
        time.sleep(1.0 if others else 0.0)      # let them get going
        for p in procs:
            p.stdin.write('go\n')
            p.stdin.flush()
        outs = [p.communicate(timeout=seconds + 600)[0] for p in procs]
    finally:
        for p in procs + others:
            if p.poll() is None:
                p.kill()
                p.wait()
    fps, threads = [], []
    for p, out in zip(procs, outs):
        if p.returncode != 0:
            raise RuntimeError(f'tracker process failed with status {p.returncode}')
        r = json.loads(out.strip().splitlines()[-1])
        fps.append(r['frames'] / r['seconds'])
        threads.append(r['threads'])
    return fps, threads


def main(argv: list[str] | None = None) -> int:
    """Print the table; returns an exit code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--load', type=int, default=1, help='N: trackers or busy processes (1)')
    ap.add_argument('--seconds', type=float, default=10.0, help='timed seconds per case (10)')
    ap.add_argument('--threads', type=int, default=0,
                    help='tracker.threads under our policy (default 0: automatic)')
    ap.add_argument('--policy', choices=POLICIES, action='append',
                    help='repeatable; default: both')
    ap.add_argument('--frames', type=int, default=90, help='frames in the scene (90)')
    ap.add_argument('--seed', type=int, default=30000, help='scene seed (held-out range)')
    ap.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--frames-file', help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return _child(args)
    import numpy as np

    from nl_tracker_ros.scenes.writer import generate

    n = args.load
    with tempfile.TemporaryDirectory() as tmp:
        seq = generate(tmp, 1, args.seed, 'demo', 640, 480, args.frames)[0]
        path = os.path.join(tmp, 'frames.npz')
        np.savez(path, frames=np.stack([seq.load_frame(i) for i in range(len(seq))]),
                 text=seq.text)
        print(f'compact tracker with recovery, "{seq.text}", {len(seq)} frames 640x480, '
              f'{args.seconds:g} s per case, {os.cpu_count()} cores')
        cases = [('quiet', 1, '', 0), (f'{n + 1} trackers at once', n + 1, '', 0),
                 (f'beside {n} busy Python', 1, 'busy', n),
                 (f'beside {n} torch jobs', 1, 'torch', n)]
        for policy in args.policy or POLICIES:
            print(f'\n{policy}:')
            base = None
            for name, trackers, busy, load in cases:
                fps, threads = run_case(path, policy, args.threads, trackers, busy, load,
                                        args.seconds)
                total = sum(fps)
                base = base or total
                each = ' + '.join(f'{f:.1f}' for f in fps)
                used = '/'.join(str(t) for t in threads)
                print(f'  {name:<24} {each:>14} fps   ratio {total / base:.2f}   threads {used}',
                      flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""``nl-tracker replay``: play bags through the running tracker node over ROS 2 and score it."""
from __future__ import annotations

import argparse
import pathlib

HELP = 'replay bags through the tracker node over ROS 2 and score its answers'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``nl-tracker replay``."""
    from nl_tracker_ros.commands._tracking import add_tracker_arguments
    from nl_tracker_ros.evaluation.metrics import CONVENTIONS

    parser.add_argument('bags', nargs='+', help='rosbag2 recordings with ground truth')
    parser.add_argument('--out', metavar='DIR', default='runs/replay',
                        help='report folder (default runs/replay)')
    parser.add_argument('--json', metavar='OUT', help='JSON report path (default OUT/report.json)')
    parser.add_argument('--mode', choices=('deterministic', 'realtime'), default='deterministic',
                        help='deterministic: wait for each answer, no frame dropped (default); '
                             'realtime: recorded pace, dropped frames count as failures')
    parser.add_argument('--rate', type=float, default=1.0, help='realtime playback speed')
    parser.add_argument('--recovery', choices=('on', 'off', 'both'),
                        help="lost/re-found handling of the launched node; 'both' replays "
                             "with and without it (default: the node's own setting)")
    parser.add_argument('--no-launch', action='store_true',
                        help='use a tracker node that is already running instead of starting one')
    parser.add_argument('--namespace', default='', help='namespace of the node topics')
    parser.add_argument('--timeout', type=float, default=30.0,
                        help='deterministic: seconds to wait for one answer (default 30)')
    parser.add_argument('--convention', choices=CONVENTIONS, default='pytracking')
    parser.add_argument('--worst', type=int, default=3, metavar='K',
                        help='overlay videos of the K worst sequences (default 3)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    add_tracker_arguments(parser)


def _node_params_file(args, setting: str | None, path: pathlib.Path) -> pathlib.Path:
    """Write the settings of ``args`` (--config and overrides, recovery ``setting`` 'on' /
    'off' or None to keep the config's) as a ROS params file for the launched node."""
    import dataclasses

    import yaml

    from nl_tracker_ros.commands._tracking import configs
    from nl_tracker_ros.config import to_dict
    from nl_tracker_ros.ros.params import flatten, unflatten

    tracker, recovery = configs(args)
    if setting is not None:
        recovery = dataclasses.replace(recovery, enabled=setting == 'on')
    # ROS has no null: an unset field (None) is left out, as the node reads it
    params = unflatten(flatten({'tracker': to_dict(tracker), 'recovery': to_dict(recovery)}))
    params['tracker'].pop('geometry', None)       # not a node parameter
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({'/**': {'ros__parameters': params}}, sort_keys=False),
                    encoding='utf-8')
    return path


def run(args: argparse.Namespace) -> int:
    """Launch the node (unless --no-launch), replay every bag, write the report."""
    from nl_tracker_ros.errors import InputError
    from nl_tracker_ros.evaluation import EvalConfig, summarize, write_results
    from nl_tracker_ros.evaluation.report import write_report
    from nl_tracker_ros.inputs.bags import read_sequence
    from nl_tracker_ros.ros.replay import ReplayConfig, replay_sequences

    config = EvalConfig(convention=args.convention)
    replay_cfg = ReplayConfig(mode=args.mode, rate=args.rate, reply_timeout_s=args.timeout)
    sequences, skipped = [], []
    for p in args.bags:
        try:
            seq = read_sequence(p)
            if not seq.has_truth:
                raise InputError(f'bag {p}: no ground-truth topic (TrackedTarget) to score')
            sequences.append(seq)
        except (InputError, OSError) as exc:
            skipped.append((pathlib.Path(p).name, str(exc)))
            print(f'skipped {p}: {exc}')
    if not sequences:
        raise InputError(f'nothing to replay in {", ".join(args.bags)}')
    settings = {'both': ('on', 'off'), None: (None,)}.get(args.recovery, (args.recovery,))
    out = pathlib.Path(args.out)
    results, runs = {}, {}
    for setting in settings:
        name = 'node' if setting is None else f'recovery-{setting}'
        params_file = None
        if not args.no_launch:
            params_file = _node_params_file(args, setting, out / f'node_params_{name}.yaml')
        done, failed = replay_sequences(
            sequences, replay_cfg, params_file=params_file, namespace=args.namespace,
            launch=not args.no_launch, progress=not args.no_progress, desc=name)
        for r in done:
            write_results(r, out / 'results' / name)
        runs[name] = done
        results[name] = summarize(done, config, skipped + failed)
    report, paths, text = write_report(out, results, runs, config, worst=args.worst,
                                       json_path=args.json, extra={'replay_mode': args.mode})
    for seq in sequences:     # bags keep their files open for load_frame
        getattr(seq, 'close', lambda: None)()
    print(text)
    if args.mode == 'realtime':
        for name, done in runs.items():
            print(f'{name}: {throughput(done, args.rate)}')
    return 0 if results[next(iter(results))]['sequences_scored'] else 1


def throughput(runs, rate: float = 1.0) -> str:
    """What a realtime replay shows of the node's speed: frames answered per second of playback.

    A frame counts once the node answered it (``times_s`` set); the playback of a sequence lasts
    from its first stamp to one frame interval past its last, divided by ``rate``.
    """
    import numpy as np
    answered = sent = 0
    span = 0.0
    for r in runs:
        answered += int((~np.isnan(r.times_s)).sum())
        sent += len(r)
        if len(r) > 1:
            dt = np.diff(r.stamps)
            span += (r.stamps[-1] - r.stamps[0] + float(np.median(dt))) / rate
    if span <= 0:
        return f'answered {answered} of {sent} frames'
    return (f'answered {answered} of {sent} frames, {answered / span:.1f} per second of '
            f'playback ({sent / span:.1f} sent per second)')

"""Options shared by the commands that build a tracker (track, eval, replay, train-recovery)."""
from __future__ import annotations

import argparse
import dataclasses


def add_tracker_arguments(parser: argparse.ArgumentParser) -> None:
    """--config, --preset, --weights, --device, --threads, --backend, --onnx-dir,
    --random-weights."""
    g = parser.add_argument_group('tracker')
    g.add_argument('--config', metavar='YAML',
                   help='settings as the node reads them: a ROS params file such as '
                        'config/tracker.yaml (every section applies), or a mapping with '
                        '"tracker:" and "recovery:" sections')
    g.add_argument('--preset', help='model preset, overrides the config')
    g.add_argument('--weights', help='weights file, overrides the config')
    g.add_argument('--device', help="'cpu', 'cuda', 'cuda:1' or 'auto'")
    g.add_argument('--threads', type=int, metavar='N',
                   help='CPU threads for the model (default 0: automatic, 1 for the compact '
                        'model; README "Busy machines")')
    g.add_argument('--backend', choices=('torch', 'onnxruntime'),
                   help='what runs the model (default torch); onnxruntime runs the graphs of '
                        '--onnx-dir, or exports them on first use into ~/.cache/nl_tracker_ros')
    g.add_argument('--onnx-dir', metavar='DIR',
                   help='onnxruntime backend: a folder written by nl-tracker export')
    g.add_argument('--random-weights', action='store_true',
                   help='tests only: run a preset that has no weights on random ones')


def configs(args: argparse.Namespace):
    """(TrackerConfig, RecoveryConfig) from --config plus the command-line overrides."""
    from nl_tracker_ros.config import from_dict, load_yaml
    from nl_tracker_ros.errors import ConfigError
    from nl_tracker_ros.recovery.config import RecoveryConfig
    from nl_tracker_ros.ros.params import params_section, read_params_file
    from nl_tracker_ros.tracker import TrackerConfig

    tracker, recovery = TrackerConfig(), RecoveryConfig()
    if getattr(args, 'config', None):
        data = load_yaml(args.config)
        try:
            params_section(data)
        except ConfigError:      # not a ROS params file: a plain mapping of the two sections
            unknown = sorted(set(data) - {'tracker', 'recovery'})
            if unknown:
                raise ConfigError(f'--config {args.config}: unknown section(s) {unknown}; '
                                  f'expected a ROS params file or "tracker:" and '
                                  f'"recovery:" sections') from None
            tracker = from_dict(TrackerConfig, data.get('tracker'), 'tracker')
            recovery = from_dict(RecoveryConfig, data.get('recovery'), 'recovery')
        else:
            _, tracker, recovery = read_params_file(args.config)
    over = {k: getattr(args, k) for k in ('preset', 'weights', 'device', 'threads',
                                          'random_weights', 'backend', 'onnx_dir')
            if getattr(args, k, None)}
    return dataclasses.replace(tracker, **over), recovery


def tracker_config(args: argparse.Namespace):
    """TrackerConfig from --config plus the command-line overrides."""
    return configs(args)[0]


def make_tracker(args: argparse.Namespace, recovery: bool):
    """Build the tracker of ``args`` with the lost/re-found handling on or off."""
    from nl_tracker_ros.tracker import build_tracker

    tracker, rec = configs(args)
    return build_tracker(tracker, args.device, dataclasses.replace(rec, enabled=recovery))

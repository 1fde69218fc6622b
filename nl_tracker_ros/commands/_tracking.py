"""Options shared by ``track`` and ``eval``: which tracker to build, with or without recovery."""
from __future__ import annotations

import argparse
import dataclasses

from nl_tracker_ros.config import from_dict, load_yaml
from nl_tracker_ros.errors import ConfigError

RECOVERY_UNAVAILABLE = 'recovery not available in this build'


def add_tracker_arguments(parser: argparse.ArgumentParser) -> None:
    """--config, --recovery-config, --preset, --weights, --device, --threads, --random-weights."""
    g = parser.add_argument_group('tracker')
    g.add_argument('--config', metavar='YAML',
                   help='tracker settings: a ROS params file such as config/tracker.yaml, or a '
                        'mapping with a "tracker:" section (TrackerConfig fields)')
    g.add_argument('--recovery-config', metavar='YAML',
                   help='lost/re-found settings (RecoveryConfig), e.g. config/recovery.yaml')
    g.add_argument('--preset', help='model preset, overrides the config')
    g.add_argument('--weights', help='weights file, overrides the config')
    g.add_argument('--device', help="'cpu', 'cuda', 'cuda:1' or 'auto'")
    add_runtime_arguments(g)


def add_runtime_arguments(group) -> None:
    """--threads and --random-weights, for every command that builds a tracker."""
    group.add_argument('--threads', type=int, metavar='N',
                       help='CPU threads for the model (default 0: automatic, 1 for the '
                            'compact model; see README "Busy machines")')
    group.add_argument('--random-weights', action='store_true',
                       help='tests only: run a preset that has no weights on random ones')


def tracker_config(args: argparse.Namespace):
    """TrackerConfig from --config plus the command-line overrides."""
    from nl_tracker_ros.tracker import TrackerConfig

    cfg = TrackerConfig()
    if args.config:
        data = load_yaml(args.config)
        if any(isinstance(v, dict) and 'ros__parameters' in v for v in data.values()):
            from nl_tracker_ros.ros.params import read_params_file
            cfg = read_params_file(args.config)[1]
        else:
            cfg = from_dict(TrackerConfig, data.get('tracker', data), 'tracker')
    over = {k: getattr(args, k) for k in ('preset', 'weights', 'device', 'threads',
                                          'random_weights')
            if getattr(args, k, None)}
    if over:
        cfg = dataclasses.replace(cfg, **over)
    return cfg


def recovery_config(args: argparse.Namespace):
    """RecoveryConfig from --recovery-config (dataclass defaults without it)."""
    try:
        from nl_tracker_ros.recovery.config import RecoveryConfig
    except ImportError:
        raise ConfigError(RECOVERY_UNAVAILABLE) from None
    path = getattr(args, 'recovery_config', None)
    if not path:
        return RecoveryConfig()
    data = load_yaml(path)
    return from_dict(RecoveryConfig, data.get('recovery', data), 'recovery')


def make_tracker(args: argparse.Namespace, recovery: bool):
    """Build the tracker of ``args`` with the lost/re-found handling on or off."""
    try:
        from nl_tracker_ros.recovery.policy import build_tracker_with_recovery
    except ImportError:
        raise ConfigError(RECOVERY_UNAVAILABLE) from None
    rec = dataclasses.replace(recovery_config(args), enabled=recovery)
    return build_tracker_with_recovery(tracker_config(args), rec, args.device)

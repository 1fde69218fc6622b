"""What the fitting commands (``train-recovery``, ``train-kinds``) share: their fit config."""
from __future__ import annotations

import argparse
import dataclasses


def fit_config(args: argparse.Namespace, cls, key: str):
    """``cls`` (a fit config dataclass) from ``--fit-config`` (its fields, optionally under
    ``key:``) with ``--scenes``, ``--steps`` and ``--seed`` over it; sets the torch threads."""
    import torch

    from nl_tracker_ros.config import from_dict, load_yaml

    cfg = cls()
    if args.fit_config:
        data = load_yaml(args.fit_config)
        cfg = from_dict(cls, data.get(key, data), key)
    over = {'scenes': args.scenes, 'steps': args.steps, 'seed': args.seed}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in over.items() if v is not None})
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return cfg

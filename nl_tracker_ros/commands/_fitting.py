"""What the fitting commands (``train-recovery``, ``train-kinds``) share: their fit config, their
run folder's settings, and the separation summary."""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib


def add_fit_arguments(parser: argparse.ArgumentParser, data_help: str, out: str, out_help: str,
                      fit_config: str, key: str) -> None:
    """The options both fitting commands take: ``--data`` (``data_help``), ``--out`` (default
    ``out``), ``--fit-config`` (fields of ``fit_config``, optionally under ``key:``),
    ``--sequences-file`` and ``--max-sequences``."""
    parser.add_argument('--data', nargs='+', metavar='DIR', help=data_help)
    parser.add_argument('--out', default=out, metavar='DIR', help=f'{out_help} ({out})')
    parser.add_argument('--fit-config', metavar='YAML',
                        help=f'{fit_config} fields, optionally under a "{key}:" key')
    parser.add_argument('--sequences-file', metavar='FILE',
                        help="--data: only the sequences named in FILE, one a line (LaSOT's "
                             'training_set.txt)')
    parser.add_argument('--max-sequences', type=int, metavar='N',
                        help='--data: use N sequences, spread evenly over the folders (all)')


def fit_config(args: argparse.Namespace, cls, key: str, over: dict | None = None):
    """``cls`` (a fit config dataclass) from ``--fit-config`` (its fields, optionally under
    ``key:``) with ``--scenes``, ``--steps``, ``--seed`` and the options in ``over`` (field ->
    value, None: not given) over it; sets the torch threads."""
    import torch

    from nl_tracker_ros.config import from_dict, load_yaml

    cfg = cls()
    if args.fit_config:
        data = load_yaml(args.fit_config)
        cfg = from_dict(cls, data.get(key, data), key)
    over = {'scenes': args.scenes, 'steps': args.steps, 'seed': args.seed, **(over or {})}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in over.items() if v is not None})
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return cfg


def fitted_run(out: pathlib.Path, samples: dict, fit: dict, say=print) -> None:
    """Start the run folder ``out`` (``run.json``: the settings that decide its ``samples``,
    and those of the ``fit`` over them), or check a folder being resumed: other sample
    settings are refused (ConfigError naming them); other fit settings keep the samples and
    start the fit again."""
    from nl_tracker_ros.errors import ConfigError

    path = out / 'run.json'
    now = json.loads(json.dumps({'samples': samples, 'fit': fit}))
    if path.is_file():
        try:
            before = json.loads(path.read_text())
        except ValueError:
            before = {}
        old = before.get('samples', {})
        keys = sorted(k for k in set(old) | set(samples) if old.get(k) != now['samples'].get(k))
        if keys:
            raise ConfigError(f'run folder {out}: its samples were taken with other settings '
                              f'({", ".join(keys)} differ, see {path}); resume it with the same '
                              f'ones or use another --out')
        if before.get('fit') != now['fit']:
            (out / 'fit_state.pt').unlink(missing_ok=True)
            say(f'run folder {out}: other fit settings; its samples are kept, the fit starts '
                f'again')
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(now, indent=1) + '\n')


def separation_summary(sep: dict, path: pathlib.Path) -> dict:
    """Quantiles of ``recovery_fit.separation``'s similarities and how often the target wins,
    written to ``path`` (JSON) and returned."""
    import numpy as np

    q = (0.05, 0.25, 0.5, 0.75, 0.95)
    summary = {name: [round(float(v), 3) for v in np.quantile(a, q)] if len(a) else []
               for name, a in sep.items()}
    pos, neg = sep['target'], sep['best_other']
    summary['quantiles'] = list(q)
    summary['auc'] = float((pos[:, None] > neg[None, :]).mean()) if len(pos) and len(neg) \
        else float('nan')
    # the same region under its own and under a contradicting description
    summary['auc_wrong_text'] = float((pos > sep['wrong_text']).mean()) if len(pos) \
        else float('nan')
    path.write_text(json.dumps(summary, indent=1) + '\n')
    return summary

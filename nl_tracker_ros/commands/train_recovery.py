"""``nl-tracker train-recovery``: fit the AdaRS switch and TSR selector on the frozen model."""
from __future__ import annotations

import argparse
import sys

from nl_tracker_ros.commands._tracking import add_tracker_arguments

HELP = 'train the retrieval switch and window selector on generated scenes (model frozen)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``nl-tracker train-recovery``."""
    parser.add_argument('--out', default='runs/recovery', metavar='DIR',
                        help='run folder: switch.safetensors, curve.csv, separation.json '
                             '(runs/recovery)')
    parser.add_argument('--fit-config', metavar='YAML',
                        help='FitConfig fields (nl_tracker_ros.training.recovery_fit), '
                             'optionally under a "fit:" key')
    parser.add_argument('--scenes', type=int, help='generated scenes to sample (200)')
    parser.add_argument('--steps', type=int, help='optimizer steps (1500)')
    parser.add_argument('--seed', type=int, help='scene seed (4)')
    add_tracker_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Collect features, fit, write the weights and how well they separate."""
    import json
    import pathlib

    import numpy as np

    from nl_tracker_ros.commands._fitting import fit_config
    from nl_tracker_ros.commands._tracking import tracker_config
    from nl_tracker_ros.model.config import get_preset
    from nl_tracker_ros.recovery.config import MethodConfig
    from nl_tracker_ros.recovery.switch import save_weights
    from nl_tracker_ros.tracker import build_tracker
    from nl_tracker_ros.training.recovery_fit import FitConfig, collect, fit_recovery, separation

    cfg = fit_config(args, FitConfig, 'fit')
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tcfg = tracker_config(args)
    tracker = build_tracker(tcfg, args.device)
    dim = get_preset(tcfg.preset).dim

    def said(done, count):
        if done % 10 == 0 or done == count:
            print(f'[{done}/{count}] scenes sampled', file=sys.stderr, flush=True)

    samples = collect(tracker, cfg, said)
    held = max(1, len(samples) // 10)     # the last tenth only measures the separation
    train, check = samples[:-held], samples[-held:]
    print(f'{len(samples)} samples ({sum(s.present for s in samples)} with the target in the '
          f'input, {sum(s.kind == "global" for s in samples)} whole-frame, '
          f'{sum(s.kind == "unmatched" for s in samples)} with a description that fits '
          f'nothing); fitting on '
          f'{len(train)}', flush=True)
    rows = []

    def logged(step, row):
        rows.append(row)
        parts = '  '.join(f'{k} {v:.3f}' for k, v in row.items() if k != 'step')
        print(f'step {step}/{cfg.steps}  {parts}', flush=True)

    result = fit_recovery(train, MethodConfig(), dim, dim, cfg, progress=logged)
    save_weights(out / 'switch.safetensors', result.switch, result.retrieval)
    keys = list(rows[0])
    (out / 'curve.csv').write_text(','.join(keys) + '\n' + ''.join(
        ','.join(f'{r[k]:.5g}' for k in keys) + '\n' for r in rows))
    sep = separation(result.switch, check)
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
    (out / 'separation.json').write_text(json.dumps(summary, indent=1) + '\n')
    print(f'held-back samples: target similarity quantiles {summary["target"]}, best other '
          f'{summary["best_other"]}, P(target > other) {summary["auc"]:.3f}; under a '
          f'contradicting description {summary["wrong_text"]}, P(right > wrong) '
          f'{summary["auc_wrong_text"]:.3f}')
    print(f'weights: {out / "switch.safetensors"}')
    return 0

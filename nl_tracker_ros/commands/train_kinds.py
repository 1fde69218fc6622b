"""``nl-tracker train-kinds``: fit the kind classifier on crops of generated scenes."""
from __future__ import annotations

import argparse
import sys

HELP = 'train the kind classifier that checks matches not held yet against the named kind'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``nl-tracker train-kinds``."""
    parser.add_argument('--out', default='runs/kinds', metavar='DIR',
                        help='run folder: kinds.safetensors, check.json (runs/kinds)')
    parser.add_argument('--fit-config', metavar='YAML',
                        help='KindsFitConfig fields (nl_tracker_ros.training.kinds_fit), '
                             'optionally under a "kinds:" key')
    parser.add_argument('--scenes', type=int, help='generated scenes to cut crops from (2000)')
    parser.add_argument('--steps', type=int, help='optimizer steps (6000)')
    parser.add_argument('--seed', type=int, help='scene seed (4)')
    parser.add_argument('--check-scenes', type=int, default=150, metavar='N',
                        help='held-out scenes (seed 10000) the check is measured on (150)')


def run(args: argparse.Namespace) -> int:
    """Cut crops, fit, write the weights and what the check does on held-out crops."""
    import dataclasses
    import json
    import pathlib

    from nl_tracker_ros.commands._fitting import fit_config
    from nl_tracker_ros.recovery.kinds import save_classifier
    from nl_tracker_ros.training.kinds_fit import (KindsFitConfig, check_rates, collect_crops,
                                                   fit_kinds, probabilities)

    cfg = fit_config(args, KindsFitConfig, 'kinds')
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def said(done, count):
        if done % 50 == 0 or done == count:
            print(f'[{done}/{count}] scenes cut', file=sys.stderr, flush=True)

    crops = collect_crops(cfg, progress=said)
    print(f'{len(crops)} crops of {len(crops.kinds)} kinds; fitting', flush=True)
    classifier = fit_kinds(crops, cfg, progress=lambda s, loss:
                           print(f'step {s}/{cfg.steps}  loss {loss:.4f}', flush=True))
    save_classifier(out / 'kinds.safetensors', classifier)
    check = collect_crops(dataclasses.replace(cfg, scenes=args.check_scenes), seed=10000)
    probs = probabilities(classifier, check)
    summary = {str(t): check_rates(probs, check, t) for t in (0.05, 0.1, 0.2, 0.3, 0.5)}
    (out / 'check.json').write_text(json.dumps(summary, indent=1) + '\n')
    for t, row in summary.items():
        print(f'held-out crops, threshold {t}: ' +
              ', '.join(f'{k} {v:.3f}' for k, v in row.items()))
    print(f'weights: {out / "kinds.safetensors"}')
    return 0

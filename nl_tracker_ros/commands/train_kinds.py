"""``nl-tracker train-kinds``: fit the kind classifier on crops of generated scenes or of a
dataset whose sequences name their category."""
from __future__ import annotations

import argparse
import sys

from nl_tracker_ros.commands._fitting import add_fit_arguments

HELP = 'train the kind classifier that checks matches not held yet against the named kind'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``nl-tracker train-kinds``."""
    add_fit_arguments(parser, 'dataset folders whose sequences name their category (LaSOT: '
                              '<class>/<class>-N); without it, generated scenes',
                      'runs/kinds', 'run folder: kinds.safetensors, check.json',
                      'KindsFitConfig (nl_tracker_ros.training.kinds_fit)', 'kinds')
    parser.add_argument('--preset', default='jointnlt-compact',
                        help='the model preset whose tracker the classifier will check '
                             '(jointnlt-compact); recorded in the file, no model is run')
    parser.add_argument('--weights', default='',
                        help="that model's weights file ('' = the shipped ones); recorded in "
                             'the file as its sha256')
    parser.add_argument('--random-weights', action='store_true',
                        help='tests only: for a preset run on random weights')
    parser.add_argument('--scenes', type=int, help='generated scenes to cut crops from (2000)')
    parser.add_argument('--steps', type=int, help='optimizer steps (6000)')
    parser.add_argument('--seed', type=int, help='scene seed (4)')
    parser.add_argument('--check-scenes', type=int, default=150, metavar='N',
                        help='held-out scenes (seed 10000) the check is measured on, without '
                             '--data; with it, every tenth sequence is held out (150)')


def run(args: argparse.Namespace) -> int:
    """Cut crops, fit, write the weights (with the model they go with) and the check."""
    import dataclasses
    import json
    import pathlib

    from nl_tracker_ros.commands._fitting import fit_config
    from nl_tracker_ros.model.identity import model_identity
    from nl_tracker_ros.recovery.kinds import save_classifier
    from nl_tracker_ros.training.fit_data import dataset_sequences, read_names
    from nl_tracker_ros.training.kinds_fit import (KindsFitConfig, check_rates, collect_crops,
                                                   collect_dataset_crops, fit_kinds,
                                                   probabilities)

    cfg = fit_config(args, KindsFitConfig, 'kinds', {'max_sequences': args.max_sequences})
    model = model_identity(args.preset, args.weights, args.random_weights)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def said(done, count):
        if done % 50 == 0 or done == count:
            print(f'[{done}/{count}] sequences cut', file=sys.stderr, flush=True)

    if args.data:
        names = read_names(args.sequences_file) if args.sequences_file else None
        sequences, data = dataset_sequences(args.data, cfg.max_sequences, names=names)
        crops = collect_dataset_crops([s for i, s in enumerate(sequences) if i % 10 != 9], cfg,
                                      progress=said)
        held = sequences[9::10]
        check = collect_dataset_crops(held, cfg, seed=10000, kinds=crops.kinds) if held \
            else None
    else:
        crops = collect_crops(cfg, progress=said)
        data = {'generated': {'count': cfg.scenes, 'seed': cfg.seed, 'preset': cfg.preset,
                              'size': f'{cfg.width}x{cfg.height}'}}
        check = collect_crops(dataclasses.replace(cfg, scenes=args.check_scenes), seed=10000)
    print(f'{len(crops)} crops of {len(crops.kinds)} kinds; fitting', flush=True)
    classifier = fit_kinds(crops, cfg, progress=lambda s, loss:
                           print(f'step {s}/{cfg.steps}  loss {loss:.4f}', flush=True))
    save_classifier(out / 'kinds.safetensors', classifier, model,
                    dict(data, crops=len(crops), fit=dataclasses.asdict(cfg)))
    if check is not None and len(check):
        probs = probabilities(classifier, check)
        summary = {str(t): check_rates(probs, check, t) for t in (0.05, 0.1, 0.2, 0.3, 0.5)}
        (out / 'check.json').write_text(json.dumps(summary, indent=1) + '\n')
        for t, row in summary.items():
            print(f'held-out crops, threshold {t}: ' +
                  ', '.join(f'{k} {v:.3f}' for k, v in row.items()))
    else:
        print('no held-out crops: fewer than 10 sequences with a category')
    print(f'weights: {out / "kinds.safetensors"} (set recovery.kind_weights to use them with '
          f'{model.describe()})')
    return 0

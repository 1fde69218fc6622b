"""``nl-tracker train-recovery``: fit the AdaRS switch and TSR selector on the frozen model."""
from __future__ import annotations

import argparse

from nl_tracker_ros.commands._fitting import add_fit_arguments
from nl_tracker_ros.commands._tracking import add_tracker_arguments

HELP = ('fit the retrieval switch and window selector for a frozen model (any preset and '
        'weights) on dataset folders or generated scenes')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``nl-tracker train-recovery``."""
    add_fit_arguments(parser, 'dataset folders (LaSOT, TNL2K, OTB99-Lang, generated scenes); '
                              'without it, generated scenes are sampled directly',
                      'runs/recovery', 'run folder: switch.safetensors, curve.csv, '
                      'separation.json; a rerun with the same settings resumes it',
                      'FitConfig (nl_tracker_ros.training.recovery_fit)', 'fit')
    parser.add_argument('--frames-per-sequence', type=int, metavar='N',
                        help='frames sampled per sequence (12)')
    parser.add_argument('--scenes', type=int, help='without --data: generated scenes (200)')
    parser.add_argument('--steps', type=int, help='optimizer steps (1500)')
    parser.add_argument('--seed', type=int, help='sampling seed, and the scene seed (4)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    add_tracker_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Collect features (kept in the run folder), fit, write the weights with what they fit."""
    import pathlib

    import torch
    from tqdm import tqdm

    from nl_tracker_ros.commands._fitting import fit_config, fitted_run, separation_summary
    from nl_tracker_ros.commands._tracking import tracker_config
    from nl_tracker_ros.config import to_dict
    from nl_tracker_ros.errors import ConfigError
    from nl_tracker_ros.model.config import get_preset
    from nl_tracker_ros.model.identity import model_identity
    from nl_tracker_ros.recovery.config import MethodConfig
    from nl_tracker_ros.recovery.switch import save_recovery
    from nl_tracker_ros.tracker import build_tracker
    from nl_tracker_ros.training import fit_data
    from nl_tracker_ros.training.recovery_fit import (SAMPLING_FIELDS, FitConfig, collect,
                                                      fit_recovery, separation)

    cfg = fit_config(args, FitConfig, 'fit', {'max_sequences': args.max_sequences,
                                              'frames_per_sequence': args.frames_per_sequence})
    out = pathlib.Path(args.out)
    tcfg = tracker_config(args)
    model = model_identity(tcfg.preset, tcfg.weights, tcfg.random_weights)
    if args.data:
        names = fit_data.read_names(args.sequences_file) if args.sequences_file else None
        sequences, data = fit_data.dataset_sequences(args.data, cfg.max_sequences, cfg.extras,
                                                     say=tqdm.write, names=names)
        count = len(sequences)
    else:
        if not cfg.extras:
            raise ConfigError('fit.extras: false needs --data (write the scenes with nl-tracker '
                              'scenes and read them as a dataset)')
        sequences = fit_data.generated_sequences(cfg.scenes, cfg.seed, cfg.preset, cfg.width,
                                                 cfg.height)
        data, count = fit_data.generated_data(cfg.scenes, cfg.seed, cfg.preset, cfg.width,
                                              cfg.height), cfg.scenes
    method = MethodConfig()
    settings = to_dict(cfg)
    sampling = {k: settings.pop(k) for k in SAMPLING_FIELDS}
    fitted_run(out, {**sampling, **model.metadata(), 'data': data},
               {**settings, 'method': to_dict(method)}, say=tqdm.write)
    fit_threads = torch.get_num_threads()    # the tracker picks its own; the fit keeps these
    tracker = build_tracker(tcfg, args.device)
    dim = get_preset(tcfg.preset).dim
    print(f'fitting recovery for {model.describe()} on {count} sequences', flush=True)

    with tqdm(total=count, unit='seq', desc='features', disable=args.no_progress) as bar:
        samples = collect(tracker, sequences, cfg, lambda done, name: bar.update(1),
                          cache=out / 'samples')
    del tracker
    torch.set_num_threads(fit_threads)
    held = max(1, len(samples) // 10)     # the last tenth only measures the separation
    train, check = samples[:-held], samples[-held:]
    tqdm.write(f'{len(samples)} samples ({sum(s.present for s in samples)} with the target in '
               f'the input, {sum(s.kind == "global" for s in samples)} whole-frame, '
               f'{sum(s.kind == "unmatched" for s in samples)} with a description that fits '
               f'nothing); fitting on {len(train)}')
    with tqdm(total=cfg.steps, unit='step', desc='fit', disable=args.no_progress) as bar:
        def logged(step, row):
            bar.update(step - bar.n)
            parts = '  '.join(f'{k} {v:.3f}' for k, v in row.items() if k != 'step')
            tqdm.write(f'step {step}/{cfg.steps}  {parts}')

        result = fit_recovery(train, method, dim, dim, cfg, progress=logged,
                              state=out / 'fit_state.pt')
    data = dict(data, samples=len(samples), fitted_on=len(train))
    save_recovery(out / 'switch.safetensors', result.switch, result.retrieval, method, dim, dim,
                  model, data, to_dict(cfg))
    keys = list(result.curve[0])
    (out / 'curve.csv').write_text(','.join(keys) + '\n' + ''.join(
        ','.join(f'{r[k]:.5g}' for k in keys) + '\n' for r in result.curve))
    summary = separation_summary(separation(result.switch, check), out / 'separation.json')
    print(f'held-back samples: target similarity quantiles {summary["target"]}, best other '
          f'{summary["best_other"]}, P(target > other) {summary["auc"]:.3f}; under a '
          f'contradicting description {summary["wrong_text"]}, P(right > wrong) '
          f'{summary["auc_wrong_text"]:.3f}')
    print(f'weights: {out / "switch.safetensors"} (set recovery.switch_weights to use them '
          f'with {model.describe()})')
    return 0

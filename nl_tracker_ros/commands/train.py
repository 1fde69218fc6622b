"""``nl-tracker train``: train a model preset on dataset folders (or generated scenes)."""
from __future__ import annotations

import argparse

HELP = 'train the joint grounding-and-tracking model on dataset folders (resumable)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``nl-tracker train``."""
    parser.add_argument('--data', nargs='+', required=True, metavar='DIR',
                        help='dataset folders: LaSOT, TNL2K, OTB99-Lang or generated scenes')
    parser.add_argument('--preset', help='model preset (default from the config: '
                                         'jointnlt-compact)')
    parser.add_argument('--steps', type=int, help='optimizer steps (default 10000)')
    parser.add_argument('--batch-size', type=int, help='samples per step (default 8)')
    parser.add_argument('--out', default='runs/train', metavar='DIR',
                        help='run folder: weights.safetensors + train_state.pt (runs/train)')
    parser.add_argument('--resume', action='store_true',
                        help='continue the run in --out from its last checkpoint')
    parser.add_argument('--until', type=int, metavar='STEP',
                        help='stop (with a checkpoint) after this step; --resume goes on')
    parser.add_argument('--init-weights', metavar='FILE',
                        help='start from these weights (ours or the official checkpoint)')
    parser.add_argument('--config', metavar='YAML',
                        help='TrainConfig fields (optionally under a "train:" key)')
    parser.add_argument('--device', help="'cpu', 'cuda', 'cuda:1' or 'auto'")
    parser.add_argument('--workers', type=int, help='data loader processes (default 0)')
    parser.add_argument('--seed', type=int, help='seed of init, dropout and sample order')


def run(args: argparse.Namespace) -> int:
    """Read the data, build the samples, train; print where the weights are."""
    import dataclasses

    from nl_tracker_ros.config import from_dict, load_yaml
    from nl_tracker_ros.inputs import read_dataset
    from nl_tracker_ros.model.config import get_preset
    from nl_tracker_ros.training import SequenceSamples, TrainConfig, train

    cfg = TrainConfig()
    if args.config:
        data = load_yaml(args.config)
        cfg = from_dict(TrainConfig, data.get('train', data), 'train')
    over = {'preset': args.preset, 'steps': args.steps, 'batch_size': args.batch_size,
            'init_weights': args.init_weights, 'device': args.device, 'workers': args.workers,
            'seed': args.seed}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in over.items() if v is not None})
    sequences = []
    for folder in args.data:
        seqs, skipped = read_dataset(folder)
        print(f'{folder}: {len(seqs)} sequences' + (f', {len(skipped)} skipped' if skipped
                                                    else ''))
        sequences += seqs
    model_config = get_preset(cfg.preset)
    samples = SequenceSamples(sequences, model_config, cfg.samples,
                              length=cfg.steps * cfg.batch_size, seed=cfg.seed)
    result = train(cfg, samples, args.out, resume=args.resume, model_config=model_config,
                   until=args.until)
    print(f'trained {result.step} steps; weights: {result.weights}')
    return 0

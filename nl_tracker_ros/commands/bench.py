"""``nl-tracker bench``: parameters, FLOPs and per-frame latency of the model presets; with
``--backend onnxruntime``, torch and onnxruntime timed on the same inputs in one run."""
from __future__ import annotations

import argparse

HELP = 'benchmark a model preset: parameters, FLOPs, grounding/tracking latency'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the bench options."""
    parser.add_argument('--preset', action='append', metavar='NAME',
                        help='model preset (repeatable); default: jointnlt-base and '
                             'jointnlt-compact')
    parser.add_argument('--device', default='cpu', help="'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument('--precision', default=None, choices=('fp32', 'fp16', 'bf16'),
                        help='autocast precision (default: fp32 on CPU, fp16 on CUDA)')
    parser.add_argument('--compile', action='store_true', help='torch.compile per-frame steps')
    parser.add_argument('--iters', type=int, default=10, help='timed repetitions per step')
    parser.add_argument('--warmup', type=int, default=2, help='untimed repetitions per step')
    parser.add_argument('--threads', type=int, default=None, help='CPU threads for torch')
    parser.add_argument('--weights', default=None,
                        help='weights file (official or ours); default random weights (torch '
                             'backend) or the shipped ones where they exist (onnxruntime)')
    parser.add_argument('--backend', default='torch', choices=('torch', 'onnxruntime'),
                        help='torch: parameters, FLOPs, latency (default); onnxruntime: '
                             'onnxruntime against torch fp32 on the same inputs, interleaved, '
                             'with the speed-up: grounding and tracking frames, and '
                             'Tracker.update on a 640x480 scene with recovery on for a preset '
                             'with weights; fp32 and bf16 (torch, CPU) or fp16 unless '
                             '--precision picks one')
    parser.add_argument('--frames', type=int, default=60,
                        help='onnxruntime: Tracker.update frames timed per variant (60)')


def run(args: argparse.Namespace) -> int:
    """Run the benchmark for each preset and print its report."""
    from nl_tracker_ros.benchmarks import model as bench

    precision = args.precision or ('fp16' if args.device.startswith('cuda') else 'fp32')
    for i, preset in enumerate(args.preset or ['jointnlt-base', 'jointnlt-compact']):
        if args.backend == 'onnxruntime':
            precisions = ('fp32', args.precision) if args.precision else None
            res = bench.compare(preset, args.device, precisions, args.warmup, args.iters,
                                args.weights, args.threads, frames=args.frames)
        else:
            res = bench.run(preset, args.device, precision, args.compile, args.warmup,
                            args.iters, args.weights, args.threads)
        if i:
            print()
        print('\n'.join(res.lines()))
    return 0

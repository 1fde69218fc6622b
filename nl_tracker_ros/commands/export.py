"""``nl-tracker export``: the model as ONNX graphs for onnxruntime or TensorRT, checked."""
from __future__ import annotations

import argparse
import pathlib

HELP = ('export a model preset to ONNX (text, template, image, grounding and tracking graphs '
        '+ manifest), checked against torch with onnxruntime')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``nl-tracker export``."""
    parser.add_argument('--preset', default='jointnlt-compact',
                        help='model preset (default jointnlt-compact)')
    parser.add_argument('--weights', help='weights file (default: the weights shipped for the '
                                          'preset)')
    parser.add_argument('--out', required=True, metavar='DIR',
                        help='folder to write (replaced if it exists); give it to the tracker '
                             'as tracker.onnx_dir / --onnx-dir')
    parser.add_argument('--fp16', action='store_true',
                        help='fp16 graphs (float32 inputs and outputs), for GPUs; run them '
                             'with tracker.precision fp16')
    parser.add_argument('--opset', type=int, default=None, help='ONNX opset (default 17)')
    parser.add_argument('--threads', type=int, metavar='N',
                        help='CPU threads for the export and its check (default: automatic)')
    parser.add_argument('--random-weights', action='store_true',
                        help='tests only: export a preset that has no weights with random ones')


def run(args: argparse.Namespace) -> int:
    """Build the model, write the graphs, check them with onnxruntime, print what was made."""
    import time

    from nl_tracker_ros.errors import ConfigError
    from nl_tracker_ros.model.checkpoint import load_weights, shipped_weights
    from nl_tracker_ros.model.config import get_preset
    from nl_tracker_ros.model.export import OPSET, TOLERANCES, export_model
    from nl_tracker_ros.model.jointnlt import build_model
    from nl_tracker_ros.threads import apply_threads

    mc = get_preset(args.preset)
    weights = args.weights or shipped_weights(args.preset)
    if not weights and not args.random_weights:
        raise ConfigError(f'--preset {args.preset}: no weights ship with this preset; give '
                          f'--weights (e.g. the official JointNLT checkpoint), or '
                          f'--random-weights for tests')
    apply_threads(args.threads or 0, args.preset, 'cpu')
    precision = 'fp16' if args.fp16 else 'fp32'
    t0 = time.perf_counter()
    model = build_model(mc)
    if weights:
        load_weights(model, weights, mc)
    model.eval()
    report = export_model(model, mc, pathlib.Path(args.out), precision, str(weights or ''),
                          opset=args.opset or OPSET)
    seconds = time.perf_counter() - t0
    man = report.manifest
    print(f'{args.preset} ({precision}, opset {man["opset"]}, weights '
          f'{weights or "random"}) -> {report.folder}')
    for name, g in man['graphs'].items():
        size = (report.folder / g['file']).stat().st_size / 1e6
        ins = ', '.join(f'{i["name"]}{tuple(i["shape"])}' for i in g['inputs'])
        diffs = report.max_diff.get(name, {})
        diff = f'{max(diffs.values(), default=float("nan")):.1g}'
        if 'box_cxcywh' in diffs:
            diff += f' (box {diffs["box_cxcywh"]:.1g})'
        print(f'  {g["file"]:<14} {size:7.1f} MB  |ort - torch| <= {diff:<17} in: {ins}')
    tol = TOLERANCES[precision]
    print(f'checked with onnxruntime (CPU) against torch on random inputs: every output within '
          f'tolerance (boxes {tol["box"]:g} of the crop); done in {seconds:.0f} s')
    return 0

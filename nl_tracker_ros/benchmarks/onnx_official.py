"""jointnlt-base on onnxruntime against the official JointNLT outputs (the CI fixture).

Run from a checkout: ``python -m nl_tracker_ros.benchmarks.onnx_official``.

``test/test_official_equivalence.py`` checks the torch model against outputs recorded from the
official code; exporting the base model (BERT-base, Swin-B stages 1-3: about 1 GB of graphs)
takes over a minute on a 2-core CPU, too long for the test suite, so the same comparison for
the onnxruntime backend runs here. It builds the base model from the fixture's synthetic
official-layout weights, exports it (checked against torch by the export itself), and runs the
test's model-level and tracker-level comparisons, with the test's tolerances (boxes 1e-4 of the
crop, score maps 5e-5), on torch and on onnxruntime. Prints the largest differences and exits 1
when onnxruntime is outside a tolerance.
"""
from __future__ import annotations

import argparse
import importlib.util
import pathlib
import sys
import tempfile
import time

TEST = pathlib.Path(__file__).resolve().parents[2] / 'test' / 'test_official_equivalence.py'


def _load_test():
    if not TEST.is_file():
        raise SystemExit(f'{TEST}: not found; run this from a checkout of the repository')
    spec = importlib.util.spec_from_file_location('official_equivalence', TEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    """Print torch's and onnxruntime's largest differences to the official outputs."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=int, default=0, help='CPU threads (0: automatic)')
    args = ap.parse_args(argv)
    import numpy as np
    import torch

    from nl_tracker_ros.model import build_model
    from nl_tracker_ros.model.checkpoint import load_weights
    from nl_tracker_ros.model.export import export_model
    from nl_tracker_ros.model.onnx_backend import OnnxModel
    from nl_tracker_ros.model.synthetic_weights import synthetic_official_state
    from nl_tracker_ros.threads import apply_threads

    t = _load_test()
    base = t.BASE
    threads = apply_threads(args.threads, base.name, 'cpu')
    with np.load(t.FIXTURE) as f:
        fixture = {k: f[k] for k in f.files}
    frames = [t.make_frame(i) for i in range(t.FRAMES)]
    crops = t.model_level_crops(frames)
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / 'JointNLT_ep0300.pth.tar'
        torch.save({'net': synthetic_official_state(base, t.SEED), 'epoch': 300}, path)
        model = build_model(base)
        load_weights(model, path, base)
        model.eval()
        t0 = time.perf_counter()
        report = export_model(model, base, pathlib.Path(tmp) / 'export', 'fp32', str(path))
        print(f'export + check: {time.perf_counter() - t0:.0f} s, {threads} threads; export '
              f'check (random inputs) box {report.max_diff["track"]["box_cxcywh"]:.2g}')
        onnx = OnnxModel(report.folder, base, 'fp32', 'cpu', threads)
        for name, m in (('torch', model), ('onnxruntime', onnx)):
            ours = t.run_model_level(m, fixture['input_ids'], fixture['input_mask'], crops)
            level = {'model': ours, 'tracker': t.run_tracker_level(m, frames)}
            for prefix, out in level.items():
                try:
                    diffs = t._compare(out, fixture, prefix + '_')
                    verdict = 'within tolerance'
                except AssertionError as exc:
                    diffs, verdict = {}, f'OUTSIDE tolerance: {str(exc).splitlines()[0]}'
                    failed |= name == 'onnxruntime'
                text = ', '.join(f'{k} {v:.2g}' for k, v in diffs.items())
                extra = ''
                if prefix == 'tracker':
                    ref = fixture['tracker_frame_box_xywh']
                    px = np.abs(out['frame_box_xywh'] - ref).max()
                    extra = f', frame boxes {px:.3g} px'
                print(f'{name:>12} {prefix:>7} level vs official: {text}{extra} ({verdict})')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

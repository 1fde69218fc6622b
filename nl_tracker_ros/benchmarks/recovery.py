"""CPU cost of the lost/re-found machinery.

Run: ``python -m nl_tracker_ros.benchmarks.recovery [--preset jointnlt-compact] [--threads 1 2]``.

Prints median and p95 milliseconds of:

- ``local, heatmap only``: corner proposals + confidence, what every tracking frame pays
  without trained switch weights;
- ``local, AdaRS k=5``: the same plus the switch on k=5 proposals (the per-frame overhead
  while tracking);
- ``search 640x480, recovery part``: grounding proposals + sliding windows + guided selector +
  AdaRS on the candidates, on features of the grounding image;
- ``search 640x480, model grounding``: ``Tracker.global_step`` (resize, image encoder, grounding
  head) of the preset with random weights, when the model package is available;
- ``colour check, 200x300 box``: ``recovery.colour_share`` on a match not held yet (whole-frame
  or trial frames of a command that names a colour; never on a held target's frames);
- ``kind check, 200x300 box``: ``recovery.kind_threshold`` on the same frames of a command that
  names a kind (a crop and the kind classifier, random weights of the shipped size).

Switch and selector have random weights of the configured sizes (cost does not depend on the
values); the feature maps have the preset's width and sizes.
"""
from __future__ import annotations

import argparse
import statistics
import time
import types

import numpy as np
import torch

from nl_tracker_ros.colours import colour_share
from nl_tracker_ros.preprocessing import CropGeometry
from nl_tracker_ros.recovery.config import MethodConfig
from nl_tracker_ros.recovery.kinds import KindCheck, KindClassifier
from nl_tracker_ros.recovery.switch import build_recovery
from nl_tracker_ros.training.kinds_fit import scene_kinds


def times_ms(fn, repeats: int, warmup: int = 3) -> tuple[float, float]:
    """(median, p95) wall time of ``fn()`` in milliseconds, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    t = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        t.append((time.perf_counter() - t0) * 1000.0)
    t.sort()
    return statistics.median(t), t[min(len(t) - 1, int(round(0.95 * (len(t) - 1))))]


def fake_head(dim: int, size: int, rng: torch.Generator):
    """A HeadOutput-like object with peaked corner maps (S = ``size``) and random features."""
    def corner():
        h = torch.rand(1, size, size, generator=rng) ** 8
        return h / h.sum()
    return types.SimpleNamespace(heatmap_tl=corner(), heatmap_br=corner(),
                                 features=torch.randn(1, dim, size, size, generator=rng),
                                 box_cxcywh=torch.tensor([[0.5, 0.5, 0.2, 0.3]]))


def main(argv: list[str] | None = None) -> int:
    """Print the table; returns an exit code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--preset', default='jointnlt-compact')
    ap.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    ap.add_argument('--repeats', type=int, default=30)
    ap.add_argument('--no-model', action='store_true', help='skip the model grounding timing')
    args = ap.parse_args(argv)
    from nl_tracker_ros.model.config import get_preset
    mc = get_preset(args.preset)
    dim, s_search, s_ground = mc.dim, mc.search_size // mc.stride, mc.grounding_size // mc.stride
    cfg = MethodConfig()
    rng = torch.Generator().manual_seed(0)
    text = types.SimpleNamespace(tokens=torch.randn(1, mc.max_text_len, dim, generator=rng),
                                 pad_mask=torch.zeros(1, mc.max_text_len, dtype=torch.bool))
    plain = build_recovery(cfg, dim, dim)
    full = build_recovery(cfg, dim, dim, random_init=True)
    template = torch.randn(1, (mc.template_size // mc.stride) ** 2, dim, generator=rng)
    for r in (plain, full):
        r.start(text, template)
    local = fake_head(dim, s_search, rng)
    ground = fake_head(dim, s_ground, rng)
    frame = (640, 480)
    # a 300x300 search region at (200, 100), and 640x480 letterboxed into the square input
    ss, gs = mc.search_size, mc.grounding_size
    crop = CropGeometry(200.0, 100.0, ss / 300, ss / 300, ss, ss)
    whole = CropGeometry(0.0, 0.0, gs / 640, gs / 640, gs, gs)
    own = tuple(whole.norm_cxcywh_to_frame(ground.box_cxcywh[0].numpy()))   # grounding box
    box = tuple(crop.norm_cxcywh_to_frame(local.box_cxcywh[0].numpy()))     # tracked box
    tracker = None
    if not args.no_model:
        try:
            from nl_tracker_ros.tracker import TrackerConfig, build_tracker
            tracker = build_tracker(TrackerConfig(preset=args.preset, random_weights=True),
                                    'cpu')
            tracker.set_command('the person in the red jacket', 0.0)
        except Exception as exc:  # the model is optional here; say why it is skipped
            print(f'model grounding skipped: {exc}')
    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    cases = [
        ('local, heatmap only', lambda: plain.local(local, crop, box)),
        ('local, AdaRS k=5', lambda: full.local(local, crop, box)),
        ('search 640x480, recovery part',
         lambda: full.search(ground, whole, own, frame, (80, 160))),
    ]
    if tracker is not None:
        cases.append(('search 640x480, model grounding', lambda: tracker.global_step(image)))
    cases.append(('colour check, 200x300 box',
                  lambda: colour_share(image, (220.0, 90.0, 200.0, 300.0), 'red')))
    kinds = KindCheck(KindClassifier(scene_kinds()))
    cases.append(('kind check, 200x300 box',
                  lambda: kinds.probability(image, (220.0, 90.0, 200.0, 300.0), 'star')))
    from nl_tracker_ros.recovery.tsr import sliding_windows
    sc = cfg.search
    n_win = len(sliding_windows(*frame, sc.window_scales, sc.aspects, sc.stride, (80, 160),
                                sc.target_scales, sc.max_windows))
    print(f'preset {args.preset}: dim {dim}, search map {s_search}x{s_search}, grounding map '
          f'{s_ground}x{s_ground}, {n_win} windows at 640x480, k={cfg.proposals.top_k}')
    print(f'{"case":36s} {"threads":>7s} {"median ms":>10s} {"p95 ms":>8s}')
    with torch.inference_mode():
        for n in args.threads:
            torch.set_num_threads(n)
            for name, fn in cases:
                med, p95 = times_ms(fn, args.repeats)
                print(f'{name:36s} {n:7d} {med:10.2f} {p95:8.2f}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

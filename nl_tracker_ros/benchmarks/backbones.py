"""CPU latency and size of the compact preset's pretrained backbones.

Run: ``python -m nl_tracker_ros.benchmarks.backbones [--threads 1 2] [--repeats 40]``, or with
``--frame [--set dim=128 relation_layers=2 ...]`` for the per-frame tracking forward of the
compact JointNLT preset (search-crop encoding + track step, text and template cached) with each
backbone, eager and BN-folded.
Prints, per vision backbone, its parameter count and the per-image latency of one forward
(batch 1, float32) at 320x320 (search / grounding image) and 128x128 (template), for each thread
count, as run eagerly and as ``fold_batchnorm`` makes it (BN folded, channels-last weights);
then MiniLM-L6's parameter count and its latency for one 40-token command. Variants are timed
round-robin so that load from other processes hits them alike. Columns: wall-clock ``min`` and
``med``ian, and the median CPU time of the calling thread (``cpu``), which at one thread is the
latency of an unloaded machine even when other processes share the cores.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch
import yaml

from nl_tracker_ros.errors import ConfigError
from nl_tracker_ros.model import compact_backbones as cb

SIZES = (320, 128)


def time_round_robin(fns: dict, repeats: int, warmup: int = 3) -> dict:
    """{key: (wall ms list, thread-CPU ms list)} of each ``fn()``, called in turn ``repeats``
    times."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {k: ([], []) for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            fn()
            times[k][1].append(1000.0 * (time.thread_time() - c0))
            times[k][0].append(1000.0 * (time.perf_counter() - t0))
    return times


def params_m(module: torch.nn.Module) -> float:
    """Parameter count in millions."""
    return sum(p.numel() for p in module.parameters()) / 1e6


def stats(wall_cpu: tuple[list[float], list[float]]) -> str:
    """'min / median / cpu' column text."""
    wall, cpu = wall_cpu
    return f'{min(wall):6.1f} /{statistics.median(wall):6.1f} /{statistics.median(cpu):6.1f}'


def frame_latency(threads: list[int], repeats: int, overrides: dict) -> None:
    """Print per-frame latency of the compact preset's tracking step for each backbone."""
    from nl_tracker_ros.model.config import get_preset
    from nl_tracker_ros.model.jointnlt import build_model

    # Random weights: same speed, no weight files needed.
    base = dataclasses.replace(get_preset('jointnlt-compact'), vision_weights='',
                               text_weights='', **overrides)
    print(f'jointnlt-compact per frame (encode search {base.search_size}px + track), '
          f'overrides {overrides or "none"}')
    fns = {}
    with torch.inference_mode():
        for vision in ('mobilenetv2', 'efficientnet_lite0'):
            for variant in ('eager', 'folded+cl'):
                cfg = dataclasses.replace(base, vision=vision)
                model = build_model(cfg).eval()
                if variant != 'eager':
                    cb.fold_backbones(model)
                ids = torch.randint(1000, 30000, (1, cfg.max_text_len))
                text = model.encode_text(ids, torch.ones_like(ids))
                size = cfg.template_size
                template = model.encode_image(torch.randn(1, 3, size, size))
                search = torch.randn(1, 3, cfg.search_size, cfg.search_size)
                memory = model.ground(text, model.encode_image(search), None).temporal
                fns[(vision, variant)] = (
                    lambda m=model, t=text, z=template, x=search, mem=memory:
                    m.track(t, z, m.encode_image(x), mem))
            print(f'{vision:<20}params {params_m(model):6.2f}M')
        for n in threads:
            torch.set_num_threads(n)
            for (vision, variant), ms in time_round_robin(fns, repeats).items():
                print(f'{vision:<20}{variant:<11} threads {n}  {stats(ms)} ms '
                      f'(wall min / wall median / thread-CPU median)')


def main(argv: list[str] | None = None) -> int:
    """Print the tables; returns an exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2],
                        help='torch intra-op thread counts to measure')
    parser.add_argument('--repeats', type=int, default=40, help='timed calls per number')
    parser.add_argument('--random', action='store_true',
                        help='random weights (no package weights needed; same speed)')
    parser.add_argument('--frame', action='store_true',
                        help='time the compact JointNLT per-frame forward instead')
    parser.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE',
                        help='ModelConfig overrides for --frame (YAML values)')
    args = parser.parse_args(argv)
    if args.frame:
        overrides = {}
        for item in args.set:
            key, sep, value = item.partition('=')
            if not sep:
                parser.error(f'--set {item!r}: expected KEY=VALUE')
            overrides[key] = yaml.safe_load(value)
        try:
            frame_latency(args.threads, args.repeats, overrides)
        except (TypeError, ConfigError) as exc:  # unknown field, or a value the config rejects
            parser.error(f'--set: {exc}')
        return 0

    nets = {'mobilenetv2': cb.MobileNetV2Features(),
            'efficientnet_lite0': cb.EfficientNetLite0Features()}
    variants = {}
    for name, net in nets.items():
        if not args.random:
            cb.load_pretrained(net)
        variants[(name, 'eager')] = net.eval()
        variants[(name, 'folded+cl')] = cb.fold_batchnorm(net)
    inputs = {s: torch.randn(1, 3, s, s) for s in SIZES}
    print(f'torch {torch.__version__}, CPU, batch 1, float32, {args.repeats} calls: '
          f'wall min / wall median / thread-CPU median, ms per image')
    print(f'{"backbone":<20}{"params":>8}{"ch":>5}  {"variant":<11}{"threads":>8}'
          + ''.join(f'{f"{s}x{s}":>23}' for s in SIZES))
    with torch.inference_mode():
        for threads in args.threads:
            torch.set_num_threads(threads)
            times = time_round_robin(
                {(k, s): (lambda m=m, x=x: m(x))
                 for k, m in variants.items() for s, x in inputs.items()}, args.repeats)
            for (name, variant), net in variants.items():
                print(f'{name:<20}{params_m(nets[name]):>7.2f}M{net.out_channels:>5}  '
                      f'{variant:<11}{threads:>8}'
                      + ''.join(f'{stats(times[((name, variant), s)]):>23}' for s in SIZES))

        bert = cb.build_minilm()
        ids = torch.randint(1000, 30000, (1, 40))
        mask = torch.ones_like(ids)
        for threads in args.threads:
            torch.set_num_threads(threads)
            ms = time_round_robin({'bert': lambda: bert(input_ids=ids, attention_mask=mask)},
                                  args.repeats)['bert']
            print(f'{"minilm-l6":<20}{params_m(bert):>7.2f}M{384:>5}  {"40 tokens":<11}'
                  f'{threads:>8}{stats(ms):>23}  (once per command)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

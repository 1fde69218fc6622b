"""Model benchmark: parameters, FLOPs and per-frame latency of grounding and tracking.

A grounding frame is ``encode_image`` on the grounding image + ``ground``; a tracking frame is
``encode_image`` on the search crop + ``track`` with a full RoI memory. Text (once per command)
and template (once per template) are reported separately, as the tracker caches them.

``compare`` (``nl-tracker bench --backend onnxruntime``) times the torch model and the
onnxruntime backend on the same inputs in one run, turn by turn, and prints the speed-up.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from nl_tracker_ros.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class BenchResult:
    """Numbers for one preset on one device."""

    preset: str
    device: str
    precision: str
    compiled: bool
    threads: int
    params_m: float                 # millions of parameters
    gflops: dict[str, float]        # step name -> GFLOPs (multiply-add = 2 FLOPs)
    latency_ms: dict[str, tuple[float, float]]  # step name -> (median, min) milliseconds

    def lines(self) -> list[str]:
        """Human-readable report; the first line is ``params: <millions>M``."""
        out = [f'params: {self.params_m:.1f}M',
               f'preset: {self.preset}  device: {self.device}  precision: {self.precision}  '
               f'compile: {self.compiled}  threads: {self.threads}']
        for name, g in self.gflops.items():
            med, best = self.latency_ms.get(name, (float('nan'),) * 2)
            fps = f'  ({1000.0 / med:.1f} FPS)' if name.endswith('frame') else ''
            out.append(f'{name:>15}: {g:8.2f} GFLOPs  {med:9.1f} ms median  {best:9.1f} ms min'
                       f'{fps}')
        return out


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], object], device: torch.device, warmup: int, iters: int
          ) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(1000.0 * (time.perf_counter() - t0))
    return statistics.median(times), min(times)


def _flops(fn: Callable[[], object]) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def run(preset: str, device: str = 'cpu', precision: str = 'fp32', compile: bool = False,
        warmup: int = 2, iters: int = 10, weights: str | None = None,
        threads: int | None = None, seed: int = 0) -> BenchResult:
    """Build ``preset`` (random weights unless ``weights``) and measure it on ``device``."""
    from nl_tracker_ros.model.checkpoint import load_weights
    from nl_tracker_ros.model.config import get_preset
    from nl_tracker_ros.model.jointnlt import build_model
    from nl_tracker_ros.threads import apply_threads

    dev = torch.device(device)
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ConfigError(f'device {device}: CUDA is not available on this machine')
    apply_threads(threads or 0, preset, dev.type)
    cfg = get_preset(preset)
    if weights is None:  # random weights: do not read backbone files for a timing run
        cfg = dataclasses.replace(cfg, vision_weights='', text_weights='')
    torch.manual_seed(seed)
    model = build_model(cfg)
    if weights:
        load_weights(model, weights, cfg)
    model.to(dev).eval().requires_grad_(False)  # the FLOP counter's hooks want no grads
    model.set_precision(precision)
    params = sum(p.numel() for p in model.parameters()) / 1e6

    g = torch.Generator().manual_seed(seed)
    n = cfg.max_text_len
    ids = torch.randint(1000, 5000, (1, n), generator=g).to(dev)
    mask = torch.zeros(1, n, dtype=torch.long, device=dev)
    mask[:, :12] = 1
    ground_img = torch.randn(1, 3, cfg.grounding_size, cfg.grounding_size, generator=g).to(dev)
    template_img = torch.randn(1, 3, cfg.template_size, cfg.template_size, generator=g).to(dev)
    search_img = torch.randn(1, 3, cfg.search_size, cfg.search_size, generator=g).to(dev)

    with torch.inference_mode():
        text = model.encode_text(ids, mask)
        template = model.encode_image(template_img)
        memory = model.ground(text, model.encode_image(ground_img)).temporal
        for _ in range(cfg.memory_frames):  # fill the RoI memory as in steady tracking
            memory = model.track(text, template, model.encode_image(search_img), memory).temporal
        steps = {
            'text': lambda: model.encode_text(ids, mask),
            'template': lambda: model.encode_image(template_img),
            'ground frame': lambda: model.ground(text, model.encode_image(ground_img)),
            'track frame': lambda: model.track(text, template, model.encode_image(search_img),
                                               memory),
        }
        gflops = {k: _flops(fn) for k, fn in steps.items()}
        if compile:  # after counting: the counter needs the eager graph
            model.compile_steps()
        latency = {k: _time(fn, dev, warmup, iters) for k, fn in steps.items()}
    return BenchResult(preset, str(dev), precision, compile, torch.get_num_threads(), params,
                       gflops, latency)


# ------------------------------------------------------------- torch against onnxruntime

REFERENCE = 'torch fp32'


@dataclasses.dataclass(frozen=True)
class CompareResult:
    """Latency of the same steps under torch and onnxruntime, measured in one run."""

    preset: str
    device: str
    threads: int
    runtime: str                    # onnxruntime version and the provider that ran the graphs
    variants: tuple[str, ...]       # 'torch fp32' (the reference), 'onnxruntime fp16', ...
    latency_ms: dict[str, dict[str, tuple[float, float]]]  # step -> variant -> (median, min)
    export_s: dict[str, float]      # variant -> seconds its export took
    notes: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """A table: one row per step, each variant's median ms and its ratio to torch fp32."""
        width = 22
        out = [f'preset: {self.preset}  device: {self.device}  threads: {self.threads}  '
               f'{self.runtime}',
               f'median ms (min), speed-up = {REFERENCE} median / median, interleaved in one run',
               f'{"step":<34}' + ''.join(f'{v:>{width}}' for v in self.variants)]
        for step, cells in self.latency_ms.items():
            ref = cells.get(REFERENCE, (float('nan'),))[0]
            row = f'{step:<34}'
            for v in self.variants:
                if v not in cells:
                    row += f'{"-":>{width}}'
                    continue
                med, best = cells[v]
                row += f'{f"{med:.1f} ({best:.1f}) {ref / med:.2f}x":>{width}}'
            out.append(row)
        if self.export_s:
            out.append(f'{"export + check (once), s":<34}' + ''.join(
                f'{(f"{self.export_s[v]:.0f}" if v in self.export_s else "-"):>{width}}'
                for v in self.variants))
        return out + list(self.notes)


def compare(preset: str, device: str = 'cpu', precisions: tuple[str, ...] | None = None,
            warmup: int = 2, iters: int = 10, weights: str | None = None,
            threads: int | None = None, seed: int = 0, frames: int = 60) -> CompareResult:
    """Time torch and onnxruntime on the same inputs in one run, interleaved step by step.

    Variants: torch fp32 (the reference) and, per precision, torch and onnxruntime; by default
    fp32 and bf16 (CPU) or fp16 (CUDA) for torch, fp32 and fp16 for onnxruntime (it runs no
    bf16). Steps: a grounding frame and a tracking frame with a full RoI memory (image encoder
    included), on the preset's weights (``weights``, else the shipped ones, else random); and,
    when the preset has real weights, ``Tracker.update`` with the lost/re-found handling on
    over ``frames`` frames of one generated 640x480 held-out scene (the grounding frame apart),
    where the box agreement with torch fp32 is also reported.
    """
    from nl_tracker_ros.model.checkpoint import load_weights, shipped_weights
    from nl_tracker_ros.model.config import get_preset
    from nl_tracker_ros.model.export import PRECISIONS
    from nl_tracker_ros.model.jointnlt import build_model
    from nl_tracker_ros.model.onnx_backend import (OnnxModel, ort_version, ensure_export,
                                                   provider_device_type)
    from nl_tracker_ros.threads import apply_threads

    dev = torch.device(device)
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ConfigError(f'device {device}: CUDA is not available on this machine')
    cfg = get_preset(preset)
    weights = weights or (str(shipped_weights(preset) or '') or None)
    if precisions is None:
        precisions = ('fp32', 'fp16' if dev.type == 'cuda' else 'bf16', 'fp16')
    precisions = tuple(dict.fromkeys(precisions))
    torch_runs = ('fp16', 'bf16') if dev.type == 'cuda' else ('bf16',)   # besides fp32
    variants = [REFERENCE] + [f'torch {p}' for p in precisions if p in torch_runs]
    variants += [f'onnxruntime {p}' for p in precisions if p in PRECISIONS]
    n = apply_threads(threads or 0, preset, provider_device_type(device))
    if weights is None:
        cfg = dataclasses.replace(cfg, vision_weights='', text_weights='')
    torch.manual_seed(seed)
    model = build_model(cfg)
    if weights:
        load_weights(model, weights, cfg)
    model.to(dev).eval()

    models, export_s, keep = {}, {}, []
    for v in variants:
        backend, precision = v.split()
        if backend == 'torch':
            models[v] = (model, precision)
            continue
        t0 = time.perf_counter()
        folder, sha, alive = ensure_export(cfg, weights or '', precision, lambda: model)
        export_s[v] = time.perf_counter() - t0
        keep.append(alive)
        models[v] = (OnnxModel(folder, cfg, precision, device, n, sha), None)
    provider = next((m.provider for m, _ in models.values() if isinstance(m, OnnxModel)), '-')

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 5000, (1, cfg.max_text_len), generator=g).to(dev)
    mask = torch.zeros(1, cfg.max_text_len, dtype=torch.long, device=dev)
    mask[:, :12] = 1
    ground_img = torch.randn(1, 3, cfg.grounding_size, cfg.grounding_size, generator=g).to(dev)
    template_img = torch.randn(1, 3, cfg.template_size, cfg.template_size, generator=g).to(dev)
    search_img = torch.randn(1, 3, cfg.search_size, cfg.search_size, generator=g).to(dev)

    steps = {'ground frame': {}, 'track frame': {}}
    with torch.inference_mode():
        for v, (m, precision) in models.items():
            if precision is not None:
                m.set_precision(precision)
            text = m.encode_text(ids, mask)
            template = m.encode_image(template_img)
            memory = m.ground(text, m.encode_image(ground_img)).temporal
            for _ in range(cfg.memory_frames):
                memory = m.track(text, template, m.encode_image(search_img), memory).temporal
            steps['ground frame'][v] = (lambda m=m, text=text: m.ground(
                text, m.encode_image(ground_img)))
            steps['track frame'][v] = (lambda m=m, text=text, template=template, memory=memory:
                                       m.track(text, template, m.encode_image(search_img),
                                               memory))
        latency = {step: _interleaved(fns, models, dev, warmup, iters)
                   for step, fns in steps.items()}
    model.set_precision('fp32')
    notes = []
    if weights:
        name = 'tracker update 640x480, recovery'
        latency[name], agree = _tracker_updates(preset, weights, device, n, variants, frames,
                                                seed)
        notes.append(f'boxes of tracker update against {REFERENCE}, largest difference over '
                     f'{frames} frames, px: '
                     + ', '.join(f'{v} {d}' for v, d in agree.items()))
    else:
        notes.append('tracker update: not timed on random weights (a random model does not '
                     'track, so the frames would not be tracking frames); give --weights')
    runtime = f'onnxruntime {ort_version()} ({provider})'
    return CompareResult(preset, str(dev), n, runtime, tuple(variants), latency, export_s,
                         tuple(notes))


def _interleaved(fns: dict, models: dict, device: torch.device, warmup: int, iters: int
                 ) -> dict[str, tuple[float, float]]:
    """Time each variant's ``fns[v]`` in turn, round after round, so that load on the machine
    falls on all of them alike; returns variant -> (median, min) ms."""
    times = {v: [] for v in fns}
    for i in range(warmup + iters):
        for v, fn in fns.items():
            m, precision = models[v]
            if precision is not None:
                m.set_precision(precision)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            if i >= warmup:
                times[v].append(1000.0 * (time.perf_counter() - t0))
    return {v: (statistics.median(t), min(t)) for v, t in times.items()}


def _tracker_updates(preset: str, weights: str, device: str, threads: int, variants,
                     frames: int, seed: int):
    """``Tracker.update`` of each variant, frame by frame in turn on one generated scene;
    returns (variant -> (median, min) ms, variant -> largest box difference to the reference
    in px)."""
    import tempfile

    import numpy as np

    from nl_tracker_ros.recovery.config import RecoveryConfig
    from nl_tracker_ros.scenes.writer import generate
    from nl_tracker_ros.tracker import TrackerConfig, build_tracker

    with tempfile.TemporaryDirectory() as tmp:
        seq = generate(tmp, 1, 30000 + seed, 'heldout', 640, 480, frames + 1)[0]
        images = [seq.load_frame(i) for i in range(len(seq))]
    trackers = {}
    for v in variants:
        backend, precision = v.split()
        cfg = TrackerConfig(preset=preset, weights=weights, device=device, precision=precision,
                            threads=threads, backend=backend)
        trackers[v] = build_tracker(cfg, device, RecoveryConfig())
        trackers[v].set_command(seq.text, 0.0)
    times = {v: [] for v in variants}
    boxes = {v: [] for v in variants}
    for i, image in enumerate(images):
        for v, tracker in trackers.items():
            t0 = time.perf_counter()
            result = tracker.update(image, i / 30.0)
            if i:
                times[v].append(1000.0 * (time.perf_counter() - t0))
            boxes[v].append(result.box_xywh)
    agree = {}
    for v in variants[1:]:
        both = [(a, b) for a, b in zip(boxes[REFERENCE], boxes[v])
                if a is not None and b is not None]
        one = sum((a is None) != (b is None) for a, b in zip(boxes[REFERENCE], boxes[v]))
        diff = max((float(np.abs(np.subtract(a, b)).max()) for a, b in both), default=0.0)
        agree[v] = f'{diff:.2g}' + (f' ({one} frames held by one only)' if one else '')
    return {v: (statistics.median(t), min(t)) for v, t in times.items()}, agree

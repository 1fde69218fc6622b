"""Model benchmark: parameters, FLOPs and per-frame latency of grounding and tracking.

A grounding frame is ``encode_image`` on the grounding image + ``ground``; a tracking frame is
``encode_image`` on the search crop + ``track`` with a full RoI memory. Text (once per command)
and template (once per template) are reported separately, as the tracker caches them.
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

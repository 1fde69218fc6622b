"""``nl-tracker bench`` plumbing on the tiny preset (numbers are printed, not asserted)."""
import argparse
import importlib.util

import pytest

from nl_tracker_ros.commands import bench
from nl_tracker_ros.errors import ConfigError
from nl_tracker_ros.model import build_model, get_preset


def _args(*argv):
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    return p.parse_args(list(argv))


def test_bench_prints_params_flops_and_latency(capsys):
    assert bench.run(_args('--preset', 'jointnlt-tiny', '--iters', '1', '--warmup', '0')) == 0
    out = capsys.readouterr().out.splitlines()
    params = sum(p.numel() for p in build_model(get_preset('jointnlt-tiny')).parameters())
    assert out[0] == f'params: {params / 1e6:.1f}M'
    for step in ('text', 'template', 'ground frame', 'track frame'):
        line = next(x for x in out if x.strip().startswith(step + ':'))
        assert 'GFLOPs' in line and 'ms median' in line
    assert 'FPS' in next(x for x in out if 'track frame' in x)


def test_bench_refuses_missing_cuda(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(ConfigError, match='cuda'):
        bench.run(_args('--preset', 'jointnlt-tiny', '--device', 'cuda', '--iters', '1'))


@pytest.mark.skipif(importlib.util.find_spec('nl_tracker_ros.model.compact_backbones') is None,
                    reason='compact_backbones.py (COMPACT helper) not present')
def test_compact_preset_counts_on_meta_without_weight_files():
    model = build_model(get_preset('jointnlt-compact'), device='meta')
    assert model.vision_proj.in_features == 96 and model.text_proj.in_features == 384

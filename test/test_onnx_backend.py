"""ONNX export and the onnxruntime backend: graphs, manifest, agreement with torch, refusals.

One tiny-preset export per module (weights saved to a file first, so torch and onnxruntime run
the same weights), made through ``nl-tracker export``; one compact export (shipped weights) for
the Tracker-level agreement with the lost/re-found handling on.
"""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip('onnxruntime')

from nl_tracker_ros import preprocessing as pp  # noqa: E402
from nl_tracker_ros.errors import CheckpointError, ConfigError, InputError  # noqa: E402
from nl_tracker_ros.model import build_model, get_preset  # noqa: E402
from nl_tracker_ros.model import export as ex  # noqa: E402
from nl_tracker_ros.model import onnx_backend as ob  # noqa: E402
from nl_tracker_ros.model.checkpoint import load_weights, save_weights  # noqa: E402
from nl_tracker_ros.recovery.config import RecoveryConfig  # noqa: E402
from nl_tracker_ros.tracker import TrackerConfig, build_tracker  # noqa: E402

TINY = get_preset('jointnlt-tiny')
COMPACT = get_preset('jointnlt-compact')
BOX_TOL = 1e-4      # of the crop size, as the official-equivalence test


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """(weights file, export folder, the printed report) of a seeded tiny model."""
    from nl_tracker_ros.cli import main
    root = tmp_path_factory.mktemp('tiny')
    torch.manual_seed(3)
    weights = root / 'tiny.safetensors'
    save_weights(build_model(TINY), weights, TINY)
    folder = root / 'export'
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(['export', '--preset', TINY.name, '--weights', str(weights), '--out',
                     str(folder)]) == 0
    return weights, folder, out.getvalue()


@pytest.fixture(scope='module')
def tiny_torch(tiny):
    model = build_model(TINY)
    load_weights(model, tiny[0], TINY)
    return model.eval()


@pytest.fixture(scope='module')
def tiny_onnx(tiny):
    return ob.OnnxModel(tiny[1], TINY, 'fp32', 'cpu', 1, ex.weights_digest(tiny[0]))


# ------------------------------------------------------------------------------ the export


def test_export_writes_one_graph_per_part_and_a_manifest(tiny):
    import onnx
    weights, folder, printed = tiny
    man = json.loads((folder / 'manifest.json').read_text())
    assert man['format'] == ex.FORMAT and man['preset'] == TINY.name and man['batch'] == 1
    assert man['precision'] == 'fp32' and man['opset'] >= 17
    assert man['weights_sha256'] == ex.weights_digest(weights)
    assert list(man['graphs']) == ['text', 'template', 'image', 'ground', 'track']
    specs = ex.graph_specs(TINY)
    for name, g in man['graphs'].items():
        graph = onnx.load(str(folder / g['file']))
        onnx.checker.check_model(graph)
        assert max(o.version for o in graph.opset_import if o.domain in ('', 'ai.onnx')) >= 17
        assert [i['name'] for i in g['inputs']] == [s.name for s in specs[name][0]]
        assert [tuple(i['shape']) for i in g['outputs']] == [s.shape for s in specs[name][1]]
        assert [i.name for i in graph.graph.input] == [s.name for s in specs[name][0]]
    track = {i['name']: i for i in man['graphs']['track']['inputs']}
    assert track['temporal']['shape'] == [1, 'memory', TINY.dim]
    assert track['search_pad']['dtype'] == 'bool'
    # the check ran and its worst box difference is on record
    assert man['check']['max_diff']['track']['box_cxcywh'] <= BOX_TOL
    assert 'track.onnx' in printed and 'checked with onnxruntime' in printed


def test_export_refuses_bf16_and_old_opsets(tiny_torch, tmp_path):
    with pytest.raises(ConfigError, match='bf16'):
        ex.export_model(tiny_torch, TINY, tmp_path / 'x', 'bf16')
    with pytest.raises(ConfigError, match='opset 13: expected 17 or newer'):
        ex.export_model(tiny_torch, TINY, tmp_path / 'x', opset=13)
    assert not (tmp_path / 'x').exists()


def test_export_command_refuses_a_preset_without_weights(capsys):
    from nl_tracker_ros.cli import main
    assert main(['export', '--preset', 'jointnlt-base', '--out', 'unused']) == 2
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and 'jointnlt-base' in err and '--weights' in err


def test_unsupported_op_is_named_in_one_line(tiny_torch, tmp_path, monkeypatch):
    from torch.onnx.errors import UnsupportedOperatorError

    def refuse(*args, **kwargs):
        raise UnsupportedOperatorError('aten::roi_align', 17, 'not supported\nmore detail')
    monkeypatch.setattr(torch.onnx, 'export', refuse)
    with pytest.raises(CheckpointError) as err:
        ex.export_model(tiny_torch, TINY, tmp_path / 'x')
    assert '\n' not in str(err.value) and 'export text: unsupported op' in str(err.value)
    assert 'roi_align' in str(err.value)


# ------------------------------------------------------------------- steps against torch


def _pad_mask(size, rows):
    mask = torch.zeros(1, size, size, dtype=torch.bool)
    mask[:, size - rows:] = True
    return pp.mask_to_tokens(mask, 1)


def test_steps_match_torch_with_padding_and_memory(tiny_torch, tiny_onnx):
    """Every step the Tracker calls, with text padding, padded crops and 0, 1, 2 RoI frames."""
    g = torch.Generator().manual_seed(0)
    s = TINY.feat_size
    with torch.inference_mode():
        for length in (4, 11, TINY.max_text_len):
            ids = torch.randint(1000, 5000, (1, length), generator=g)
            mask = torch.ones(1, length, dtype=torch.long)
            mask[:, length // 2 + 2:] = 0
            ref, got = tiny_torch.encode_text(ids, mask), tiny_onnx.encode_text(ids, mask)
            np.testing.assert_allclose(got.tokens, ref.tokens, atol=1e-5)
            assert torch.equal(got.pad_mask, ref.pad_mask)
        template = torch.randn(1, 3, TINY.template_size, TINY.template_size, generator=g)
        search = torch.randn(1, 3, TINY.search_size, TINY.search_size, generator=g)
        t_ref, t_got = tiny_torch.encode_image(template), tiny_onnx.encode_image(template)
        np.testing.assert_allclose(t_got, t_ref, atol=1e-4)
        s_ref, s_got = tiny_torch.encode_image(search), tiny_onnx.encode_image(search)
        np.testing.assert_allclose(s_got, s_ref, atol=1e-4)
        pad = _pad_mask(s, 3)
        heads = []
        for m, text, tokens in ((tiny_torch, ref, s_ref), (tiny_onnx, got, s_ref)):
            h = [m.ground(text, tokens, pad)]
            h.append(m.track(text, t_ref, tokens, None, search_pad_mask=pad))  # no clue
            h.append(m.track(text, t_ref, tokens, h[0].temporal, search_pad_mask=pad))
            h.append(m.track(text, t_ref, tokens, h[2].temporal))
            heads.append(h)
    for ours, theirs in zip(*heads):
        assert np.abs(theirs.box_cxcywh.numpy() - ours.box_cxcywh.numpy()).max() <= BOX_TOL
        np.testing.assert_allclose(theirs.heatmap_tl, ours.heatmap_tl, atol=1e-5)
        np.testing.assert_allclose(theirs.heatmap_br, ours.heatmap_br, atol=1e-5)
        np.testing.assert_allclose(theirs.score, ours.score, atol=1e-5)
        np.testing.assert_allclose(theirs.features, ours.features, atol=1e-3)
        assert theirs.temporal.shape == ours.temporal.shape
        np.testing.assert_allclose(theirs.temporal, ours.temporal, atol=1e-3)
    r = TINY.roi_size ** 2
    assert [h.temporal.shape[1] for h in heads[1]] == [r, r, 2 * r, 2 * r]
    # the gate really switches the clue: with and without it, the outputs differ by far more
    # than onnxruntime and torch do
    without, with_clue = heads[1][1], heads[1][2]
    assert (without.box_cxcywh - with_clue.box_cxcywh).abs().max() > 2 * BOX_TOL
    assert (without.features - with_clue.features).abs().max() > 0.05


def test_steps_refuse_what_the_graphs_cannot_take(tiny_onnx):
    text = tiny_onnx.encode_text(torch.ones(1, 5, dtype=torch.long),
                                 torch.ones(1, 5, dtype=torch.long))
    with pytest.raises(InputError, match=r'expects a float \(1, 3, 128, 128\) or '
                                         r'\(1, 3, 320, 320\) crop, got .*\(1, 3, 64, 64\)'):
        tiny_onnx.encode_image(torch.zeros(1, 3, 64, 64))
    with pytest.raises(InputError, match='text input'):
        tiny_onnx.encode_text(torch.ones(1, 99, dtype=torch.long),
                              torch.ones(1, 99, dtype=torch.long))
    tokens = torch.zeros(1, TINY.search_tokens, TINY.dim)
    with pytest.raises(InputError, match='image pad mask'):
        tiny_onnx.ground(text, tokens, torch.ones(1, TINY.search_tokens, dtype=torch.bool))
    with pytest.raises(InputError, match='temporal'):
        tiny_onnx.track(text, torch.zeros(1, TINY.template_tokens, TINY.dim), tokens,
                        torch.zeros(1, 5, TINY.dim))


# ---------------------------------------------------------------------- tracker backend


def _frames(n, w=320, h=240):
    from nl_tracker_ros.scenes.writer import generate
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        seq = generate(tmp, 1, 30003, 'heldout', w, h, n)[0]
        return seq.text, [seq.load_frame(i) for i in range(len(seq))]


def _run(tracker, text, frames):
    tracker.set_command(text, 0.0)
    return [tracker.update(f, i / 30.0) for i, f in enumerate(frames)]


def _assert_same_track(ref, got, mc):
    assert [r.state for r in ref] == [g.state for g in got]
    assert [[e.kind for e in r.events] for r in ref] == \
        [[e.kind for e in g.events] for g in got]
    for i, (r, g) in enumerate(zip(ref, got)):
        assert (r.box_xywh is None) == (g.box_xywh is None), i
        if r.box_xywh is not None:
            # 1e-4 of the search window (the crop the box was found in)
            side = pp.crop_window(r.box_xywh, mc.search_factor)[2]
            diff = np.abs(np.subtract(r.box_xywh, g.box_xywh)).max()
            assert diff <= BOX_TOL * side, (i, r.box_xywh, g.box_xywh)
        assert abs(r.score - g.score) <= 1e-4


def test_tracker_backend_follows_torch_on_tiny(tiny):
    weights, folder, _ = tiny
    cfg = TrackerConfig(preset=TINY.name, weights=str(weights), device='cpu')
    text, frames = _frames(8)
    ref = _run(build_tracker(cfg, 'cpu'), text, frames)
    onnx = build_tracker(dataclasses.replace(cfg, backend='onnxruntime', onnx_dir=str(folder)),
                         'cpu')
    assert onnx.model.provider == 'CPUExecutionProvider' and onnx.device.type == 'cpu'
    got = _run(onnx, text, frames)
    assert sum(r.box_xywh is not None for r in ref) >= 5
    _assert_same_track(ref, got, TINY)


def test_compact_tracker_with_recovery_follows_torch(tmp_path_factory, monkeypatch):
    """Shipped compact weights, lost/re-found handling on: same states, events and boxes."""
    from nl_tracker_ros.model.checkpoint import shipped_weights
    weights = shipped_weights(COMPACT.name)
    if weights is None:
        pytest.skip('no shipped compact weights')
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path_factory.mktemp('cache')))
    cfg = TrackerConfig(device='cpu')
    text, frames = _frames(24, 640, 480)
    ref = _run(build_tracker(cfg, 'cpu', RecoveryConfig()), text, frames)
    onnx = build_tracker(dataclasses.replace(cfg, backend='onnxruntime'), 'cpu',
                         RecoveryConfig())      # exported into the cache on first use
    assert onnx.model.folder.parent == ob.cache_root()
    got = _run(onnx, text, frames)
    assert sum(r.box_xywh is not None for r in ref) >= 12
    _assert_same_track(ref, got, COMPACT)


# -------------------------------------------------------------------- folders and cache


def _copy(folder, tmp_path):
    dst = tmp_path / 'copy'
    shutil.copytree(folder, dst)
    return dst


def _edit_manifest(folder, **changes):
    path = folder / 'manifest.json'
    man = json.loads(path.read_text())
    man.update(changes)
    path.write_text(json.dumps(man))


def _open(folder, mc=TINY, precision='fp32', sha=None):
    return ob.OnnxModel(folder, mc, precision, 'cpu', 1, sha)


@pytest.mark.parametrize('damage, message', [
    (lambda f: (f / 'manifest.json').unlink(), 'no manifest.json; expected the output of '
                                               'nl-tracker export'),
    (lambda f: _edit_manifest(f, format='other'), "format ('other', 1)"),
    (lambda f: (f / 'ground.onnx').unlink(), 'ground.onnx not found'),
    (lambda f: shutil.copy(f / 'ground.onnx', f / 'track.onnx'),
     'track.onnx has inputs [text_tokens (1, 40, 32) float32; text_pad (1, 40) bool; '
     'image_tokens (1, 400, 32) float32; image_pad (1, 400) bool], expected [text_tokens '
     '(1, 40, 32) float32; text_pad (1, 40) bool; template_tokens (1, 64, 32) float32'),
    (lambda f: (f / 'image.onnx').write_bytes(b'not a graph'), 'image.onnx does not load in '
                                                               'onnxruntime'),
])
def test_a_bad_folder_is_one_line_naming_the_file(tiny, tmp_path, damage, message):
    folder = _copy(tiny[1], tmp_path)
    damage(folder)
    with pytest.raises(CheckpointError) as err:
        _open(folder)
    assert str(folder) in str(err.value) and '\n' not in str(err.value)
    assert message in str(err.value)


def test_a_folder_of_other_weights_preset_or_precision_is_refused(tiny, tmp_path):
    folder = tiny[1]
    with pytest.raises(CheckpointError, match="graphs of preset 'jointnlt-tiny', expected "
                                              "'jointnlt-compact'"):
        _open(folder, COMPACT)
    with pytest.raises(CheckpointError, match='fp32 graphs, tracker.precision is fp16'):
        _open(folder, precision='fp16')
    with pytest.raises(CheckpointError, match=r"expected sha256 0123456789abcdef of the "
                                              r"tracker's weights"):
        _open(folder, sha='0123456789abcdef' * 4)
    with pytest.raises(CheckpointError, match=r'other jointnlt-tiny settings \(dim differ\)'):
        _open(folder, dataclasses.replace(TINY, dim=64, heads=4))
    with pytest.raises(CheckpointError, match='not found'):
        _open(tmp_path / 'nowhere')
    # the tracker names its weights file's digest, so another file is refused too
    other = tmp_path / 'other.safetensors'
    torch.manual_seed(99)
    save_weights(build_model(TINY), other, TINY)
    with pytest.raises(CheckpointError, match='graphs of weights'):
        build_tracker(TrackerConfig(preset=TINY.name, weights=str(other), backend='onnxruntime',
                                    onnx_dir=str(folder)), 'cpu')


def test_cache_is_used_and_a_stale_one_exported_again(tiny, tmp_path, monkeypatch):
    weights, folder, _ = tiny
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    sha = ex.weights_digest(weights)
    cached = ob.cache_folder(TINY.name, sha, 'fp32')
    assert cached == tmp_path / 'nl_tracker_ros' / f'jointnlt-tiny-{sha[:16]}-fp32'
    shutil.copytree(folder, cached)
    calls = []

    def fake_export(model, mc, out, precision, w, s, **kwargs):
        calls.append(out)
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(folder, out)
    monkeypatch.setattr(ex, 'export_model', fake_export)
    cfg = TrackerConfig(preset=TINY.name, weights=str(weights), backend='onnxruntime')
    assert build_tracker(cfg, 'cpu').model.folder == cached and calls == []
    _edit_manifest(cached, precision='fp16')          # stale: exported again, then used
    assert build_tracker(cfg, 'cpu').model.folder == cached and calls == [cached]


# ------------------------------------------------------------------ providers and config


def test_providers_best_first_of_those_installed():
    every = ['TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider']
    assert ob.choose_providers('auto', every) == every
    assert ob.choose_providers('cuda:1', every[1:]) == every[1:]
    assert ob.choose_providers('cpu', every) == ['CPUExecutionProvider']
    assert ob.choose_providers('auto', ['CPUExecutionProvider', 'AzureExecutionProvider']) == \
        ['CPUExecutionProvider']
    with pytest.raises(ConfigError, match='tracker.device cuda: onnxruntime .* has no GPU '
                                          'provider .*install onnxruntime-gpu'):
        ob.choose_providers('cuda', ['CPUExecutionProvider'])
    with pytest.raises(ConfigError, match="expected cpu, cuda, cuda:N or auto, got 'gpu'"):
        ob.choose_providers('gpu', every)
    opts = ob._provider_options(every, 'cuda:1', 'track', TINY, 'fp16', ob.cache_root())
    trt = opts[0][1]
    assert trt['device_id'] == '1' and trt['trt_fp16_enable'] == 'True'
    assert trt['trt_profile_max_shapes'] == 'temporal:1x72x32' and opts[2] == every[2]


def test_backend_setting_is_checked():
    with pytest.raises(ConfigError, match=r"tracker.backend: expected one of \['torch', "
                                          r"'onnxruntime'\], got 'tensorrt'"):
        TrackerConfig(backend='tensorrt')
    with pytest.raises(ConfigError, match='tracker.precision bf16: the onnxruntime backend '
                                          'runs fp32 or fp16 graphs'):
        build_tracker(TrackerConfig(preset=TINY.name, random_weights=True, precision='bf16',
                                    backend='onnxruntime'), 'cpu')


def test_tracking_commands_take_backend_options(tmp_path):
    from nl_tracker_ros.cli import build_parser
    from nl_tracker_ros.commands._tracking import configs
    for argv in (['track', 'x.mp4'], ['eval', 'data'], ['replay', 'x.mcap']):
        args = build_parser().parse_args(argv + ['--backend', 'onnxruntime', '--onnx-dir',
                                                 str(tmp_path)])
        tracker, _ = configs(args)
        assert tracker.backend == 'onnxruntime' and tracker.onnx_dir == str(tmp_path)
    args = build_parser().parse_args(['demo', '--backend', 'onnxruntime'])
    assert args.backend == 'onnxruntime'
    args = build_parser().parse_args(['bench', '--backend', 'onnxruntime'])
    assert args.backend == 'onnxruntime'


def test_fp16_graphs_keep_float32_inputs_and_pass_the_check(tiny, tiny_torch, tmp_path):
    """fp16 as the export makes it (converted from the fp32 trace), checked as it checks."""
    import onnx
    folder = _copy(tiny[1], tmp_path)
    for name in ex.GRAPHS:
        ex._to_fp16(folder / f'{name}.onnx')
    _edit_manifest(folder, precision='fp16')
    graph = onnx.load(str(folder / 'track.onnx'))
    types = {i.name: i.type.tensor_type.elem_type for i in graph.graph.input}
    assert types['search_tokens'] == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.graph.initializer)
    diffs = ex.check_export(folder, tiny_torch, TINY, 'fp16')
    assert 0 < diffs['track']['box_cxcywh'] <= ex.TOLERANCES['fp16']['box']
    assert _open(folder, precision='fp16').precision == 'fp16'
    with pytest.raises(CheckpointError, match=r'ground.onnx output box_cxcywh differs from '
                                              r'torch by .* \(allowed 0.0001 for fp32\)'):
        ex.check_export(folder, tiny_torch, TINY, 'fp32')


def test_bench_compares_backends_in_one_run(tiny, tmp_path, monkeypatch, capsys):
    from nl_tracker_ros.cli import main
    weights, folder, _ = tiny
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    shutil.copytree(folder, ob.cache_folder(TINY.name, ex.weights_digest(weights), 'fp32'))
    assert main(['bench', '--backend', 'onnxruntime', '--preset', TINY.name, '--weights',
                 str(weights), '--precision', 'fp32', '--iters', '1', '--warmup', '0',
                 '--frames', '2']) == 0
    out = capsys.readouterr().out.splitlines()
    assert 'onnxruntime 1.' in out[0] and 'CPUExecutionProvider' in out[0]
    header = next(x for x in out if x.startswith('step'))
    assert 'torch fp32' in header and 'onnxruntime fp32' in header
    for step in ('ground frame', 'track frame', 'tracker update 640x480, recovery'):
        row = next(x for x in out if x.startswith(step))
        assert row.count('x') >= 2 and '1.00x' in row


def test_status_message_carries_the_provider():
    msg = pytest.importorskip('nl_tracker_ros.msg')
    assert msg.TrackerStatus(provider='CUDAExecutionProvider').provider == \
        'CUDAExecutionProvider'

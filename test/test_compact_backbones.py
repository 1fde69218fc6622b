"""Pretrained compact backbones: shapes, strict loading, and evidence the weights are trained."""
import cv2
import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F

from nl_tracker_ros.errors import CheckpointError
from nl_tracker_ros.model import compact_backbones as cb
from nl_tracker_ros.model.weights_io import read_tensors

BACKBONES = [cb.MobileNetV2Features, cb.EfficientNetLite0Features]


def _prep(rgb):
    """RGB uint8 (H, W, 3) -> ImageNet-normalised (1, 3, H, W)."""
    x = (rgb.astype(np.float32) / 255 - np.float32(cb.IMAGENET_MEAN)) / np.float32(cb.IMAGENET_STD)
    return torch.from_numpy(x).permute(2, 0, 1)[None]


def _crop(rgb, x0, y0, size, out=320):
    """Square crop [x0, x0+size) of ``rgb`` resized to ``out``."""
    s = out / size
    m = np.float32([[s, 0, -x0 * s], [0, s, -y0 * s]])
    return cv2.warpAffine(rgb, m, (out, out), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


@pytest.fixture(scope='module')
def pretrained():
    torch.set_num_threads(1)
    return {cls: cb.load_pretrained(cls()).eval() for cls in BACKBONES}


@pytest.fixture(scope='module')
def minilm():
    return cb.build_minilm(), cb.build_minilm_tokenizer()


@pytest.mark.parametrize('cls', BACKBONES)
@pytest.mark.parametrize('size', [320, 128])
def test_stride16_shapes(cls, size):
    torch.manual_seed(0)
    model = cls().eval()
    with torch.inference_mode():
        y = model(torch.randn(2, 3, size, size))
    assert y.shape == (2, model.out_channels, size // 16, size // 16)
    assert model.stride == 16
    assert torch.isfinite(y).all()


def test_weights_load_strictly_and_match_file(pretrained):
    for cls, model in pretrained.items():
        state = read_tensors(cls.default_weights_path())
        kept = {k: v for k, v in state.items() if not model.is_tail_key(k)}
        own = model.state_dict()
        assert set(kept) == set(own)
        # The file goes past the stride-16 tap; those layers are dropped, not half-loaded.
        assert len(kept) < len(state)
        for k in own:
            assert torch.equal(own[k], kept[k]), k


def test_tap_is_last_stride16_block():
    # One more block of the full network halves the resolution: the tap is the latest at /16.
    mbv2 = cb.MobileNetV2Features()
    assert mbv2.is_tail_key('features.14.conv.0.weight')
    assert not mbv2.is_tail_key('features.13.conv.0.weight')
    full = cb.EfficientNetLite0Classifier().eval()
    with torch.inference_mode():
        x = torch.randn(1, 3, 128, 128)
        h = F.relu6(full._bn0(full._conv_stem(x)))
        for i, block in enumerate(full._blocks):
            h = block(h)
            if i == cb.EfficientNetLite0Features.last_block:
                assert h.shape[-1] == 128 // 16
            if i == cb.EfficientNetLite0Features.last_block + 1:
                assert h.shape[-1] == 128 // 32


def test_strict_load_names_bad_keys(tmp_path):
    state = read_tensors(cb.mobilenetv2_weights_path())
    missing = dict(state)
    del missing['features.5.conv.3.weight']
    torch.save(missing, tmp_path / 'missing.pt')
    with pytest.raises(CheckpointError, match=r'missing keys \[features\.5\.conv\.3\.weight\]'):
        cb.load_pretrained(cb.MobileNetV2Features(), tmp_path / 'missing.pt')
    extra = dict(state, **{'neck.weight': torch.zeros(3)})
    torch.save(extra, tmp_path / 'extra.pt')
    with pytest.raises(CheckpointError, match=r'unexpected keys \[neck\.weight\]'):
        cb.load_pretrained(cb.MobileNetV2Features(), tmp_path / 'extra.pt')
    # A checkpoint of the other architecture.
    with pytest.raises(CheckpointError, match='does not fit EfficientNetLite0Features'):
        cb.load_pretrained(cb.EfficientNetLite0Features(), tmp_path / 'extra.pt')
    shape = dict(state, **{'features.0.0.weight': torch.zeros(32, 3, 5, 5)})
    torch.save(shape, tmp_path / 'shape.pt')
    with pytest.raises(CheckpointError, match='shape mismatch'):
        cb.load_pretrained(cb.MobileNetV2Features(), tmp_path / 'shape.pt')


def test_bad_paths_raise_checkpoint_error(tmp_path):
    gone = tmp_path / 'nowhere' / 'weights.pt'
    with pytest.raises(CheckpointError, match=str(gone)):
        cb.load_pretrained(cb.MobileNetV2Features(), gone)
    junk = tmp_path / 'junk.pt'
    junk.write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointError, match=str(junk)):
        cb.load_pretrained(cb.EfficientNetLite0Features(), junk)
    # A pickled module needs unsafe unpickling: refused, never executed.
    pickled = tmp_path / 'module.pt'
    torch.save(torch.nn.Linear(2, 2), pickled)
    with pytest.raises(CheckpointError, match='weights-only'):
        cb.load_pretrained(cb.MobileNetV2Features(), pickled)
    with pytest.raises(CheckpointError, match=str(tmp_path)):
        cb.build_minilm(tmp_path)


def test_lite0_classifier_recognises_photos():
    model = cb.load_pretrained(cb.EfficientNetLite0Classifier()).eval()
    cases = [(skimage.data.chelsea(), range(281, 286)),  # ImageNet cat classes
             (skimage.data.coffee(), (967, 968))]  # espresso, cup
    with torch.inference_mode():
        for rgb, classes in cases:
            x = _prep(cv2.resize(rgb, (224, 224), interpolation=cv2.INTER_AREA))
            prob = model(x).softmax(-1)[0]
            assert int(prob.argmax()) in classes
            assert float(prob[list(classes)].sum()) > 0.5


def _match_rate(model, rgb, a, b):
    """Fraction of cells of crop ``a`` whose nearest feature in crop ``b`` is the same spot."""
    fa = F.normalize(model(_prep(_crop(rgb, *a)))[0], dim=0)  # (C, S, S)
    jit = cv2.GaussianBlur(np.clip(_crop(rgb, *b) * 0.8 + 20, 0, 255).astype(np.uint8),
                           (5, 5), 1.2)
    fb = F.normalize(model(_prep(jit))[0], dim=0)
    n = fa.shape[-1]
    hits = total = 0
    for i in range(n):
        for j in range(n):
            # Cell centre in crop a -> photo -> crop b pixels.
            bx = (a[0] + (j * 16 + 8) * a[2] / 320 - b[0]) * 320 / b[2]
            by = (a[1] + (i * 16 + 8) * a[2] / 320 - b[1]) * 320 / b[2]
            if not (16 <= bx < 304 and 16 <= by < 304):
                continue
            k = int(torch.einsum('c,chw->hw', fa[:, i, j], fb).argmax())
            total += 1
            hits += abs(k // n * 16 + 8 - by) <= 16 and abs(k % n * 16 + 8 - bx) <= 16
    return hits / total


@pytest.mark.parametrize('cls', BACKBONES)
def test_pretrained_features_match_across_scale_and_light(cls, pretrained):
    # Two crops of one photo at 1.3x scale, one darker and blurred: trained features find the
    # same spot far more often than the same network with random weights.
    cases = [(skimage.data.chelsea(), (40, 0, 280), (80, 20, 220)),
             (skimage.data.astronaut(), (50, 30, 400), (110, 80, 300))]
    torch.manual_seed(0)
    rand = cls().eval()
    with torch.inference_mode():
        good = np.mean([_match_rate(pretrained[cls], *c) for c in cases])
        base = np.mean([_match_rate(rand, *c) for c in cases])
    assert good > 0.85
    assert good > base + 0.15


def test_frozen_bn_keeps_running_stats():
    model = cb.MobileNetV2Features().train()
    bn = model.features[0][1]
    before = bn.running_mean.clone()
    model(torch.randn(2, 3, 64, 64))
    assert not bn.training and torch.equal(bn.running_mean, before)
    live = cb.MobileNetV2Features(frozen_bn=False).train()
    live(torch.randn(2, 3, 64, 64))
    assert not torch.equal(live.features[0][1].running_mean, before)


def test_same_padding_like_tensorflow():
    assert cb._same_pad(320, 3, 2) == (0, 1)
    assert cb._same_pad(320, 5, 2) == (1, 2)
    assert cb._same_pad(7, 3, 2) == (1, 1)
    conv = cb.Conv2dSame(1, 1, 3, 2, 0, bias=False)
    assert conv(torch.zeros(1, 1, 9, 10)).shape[-2:] == (5, 5)


def _embed(minilm, texts):
    bert, tok = minilm
    batch = tok(texts, padding=True, return_tensors='pt')
    with torch.inference_mode():
        h = bert(input_ids=batch['input_ids'],
                 attention_mask=batch['attention_mask']).last_hidden_state
    assert h.shape == (len(texts), batch['input_ids'].shape[1], 384)
    return F.normalize(cb.mean_pool(h, batch['attention_mask']), dim=-1)


def test_minilm_tokenizer_knows_words(minilm):
    _, tok = minilm
    ids = tok('follow the person in the red jacket')['input_ids']
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert tok.unk_token_id not in ids
    assert cb.minilm_vocab_path().name == 'vocab.txt'


@pytest.mark.parametrize('anchor,close,far', [
    ('a red circle', 'a crimson round shape', 'a yellow star'),
    ('follow the person in the red jacket', 'track the man wearing a red coat',
     'a blue car parked outside'),
    ('the cat', 'a kitten', 'a rocket launching'),
])
def test_minilm_embeddings_are_semantic(minilm, anchor, close, far):
    e = _embed(minilm, [anchor, close, far])
    assert float(e[0] @ e[1]) > float(e[0] @ e[2])


def test_mean_pool_ignores_padding():
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    got = cb.mean_pool(h, torch.tensor([[1, 1, 0]]))
    torch.testing.assert_close(got, torch.tensor([[2.0, 3.0]]))


@pytest.mark.parametrize('cls', BACKBONES + [cb.EfficientNetLite0Classifier])
def test_fold_batchnorm_keeps_outputs(cls):
    model = cb.load_pretrained(cls()).eval()
    folded = cb.fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    x = torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        ref, got = model(x), folded(x)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


def test_fold_backbones_in_a_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(cb.MobileNetV2Features(), torch.nn.Flatten()).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        ref = model(x)
        assert cb.fold_backbones(model) == 1
        got = model(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))

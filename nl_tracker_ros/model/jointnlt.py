"""JointNLT (Zhou et al., CVPR 2023): one network for visual grounding and tracking.

Token sequence of the relation encoder: [text (L), template (Nt), separator (1), search (Ns)],
with one learned positional table. Grounding puts masked zeros where the template goes and the
whole (padded) image in the search slot; tracking uses template and search crops and adds the
SGTM temporal clue to the target query.

The forward is split so nothing is recomputed: ``encode_text`` once per command,
``encode_image`` once per template, and per frame ``encode_image`` on the search crop followed
by ``ground`` or ``track``.

Temporal memory (SGTM): ``HeadOutput.temporal`` holds RoI tokens (B, T, D), T = roi_size^2 per
remembered frame. ``ground`` returns the RoI of the grounded box; pass it to the first ``track``
call, and each ``track`` output to the next one. Each ``track`` returns the memory for the next
frame: the first (grounding) RoI plus the RoIs of the latest ``memory_frames - 1`` frames, which
is the official tracker's queue. ``temporal=None`` tracks without SGTM (official TRACK mode).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from nl_tracker_ros.errors import ConfigError, InputError
from nl_tracker_ros.model.config import ModelConfig
from nl_tracker_ros.model.layers import CornerHead, Decoder, Encoder


@dataclasses.dataclass
class TextFeatures:
    """Projected language tokens, computed once per command."""

    tokens: torch.Tensor      # (B, L, D)
    pad_mask: torch.Tensor    # (B, L) bool, True = padding
    cls: torch.Tensor         # (B, D), the [CLS] token


@dataclasses.dataclass
class HeadOutput:
    """Result of one grounding or tracking step."""

    box_cxcywh: torch.Tensor  # (B, 4) normalised [0, 1] to the input crop / image
    heatmap_tl: torch.Tensor  # (B, S, S) softmax probabilities of the top-left corner
    heatmap_br: torch.Tensor  # (B, S, S) same for the bottom-right corner
    temporal: torch.Tensor    # (B, T, D) RoI memory for the next track call (see module doc)
    features: torch.Tensor    # (B, D, S, S) search/image features after target modulation
    # (B,) corner confidence: geometric mean of the two heatmap peaks, in (0, 1].
    score: torch.Tensor | None = None


def head_confidence(head) -> float:
    """Corner confidence of the first sample: ``head.score``, or the heatmaps' peaks without it."""
    if getattr(head, 'score', None) is not None:
        return float(head.score[0])
    tl = head.heatmap_tl[0].float().max().item()
    br = head.heatmap_br[0].float().max().item()
    return math.sqrt(max(tl, 0.0) * max(br, 0.0))


class JointNLT(nn.Module):
    """The joint grounding-and-tracking network. Build it with ``build_model``."""

    def __init__(self, vision: nn.Module, vision_channels: int, text: nn.Module,
                 text_channels: int, *, dim: int, heads: int, ffn: int, dropout: float,
                 activation: str, relation_layers: int, sgtm_encoder_layers: int,
                 sgtm_decoder_layers: int, decoder_layers: int, head_channels: int,
                 max_text_len: int, template_tokens: int, search_size: int, stride: int,
                 roi_size: int, roi_sampling_ratio: int, box_wh_scale: float,
                 memory_frames: int) -> None:
        super().__init__()
        self.dim = dim
        self.max_text_len = max_text_len
        self.template_tokens = template_tokens
        self.search_size = search_size
        self.stride = stride
        self.feat_size = search_size // stride
        self.search_tokens = self.feat_size ** 2
        self.roi_size = roi_size
        self.roi_sampling_ratio = roi_sampling_ratio
        self.box_wh_scale = box_wh_scale
        self.memory_frames = memory_frames
        self.autocast_dtype: torch.dtype | None = None

        self.vision = vision
        self.text = text
        self.vision_proj = nn.Linear(vision_channels, dim)
        self.text_proj = nn.Linear(text_channels, dim)
        args = (dim, heads, ffn, dropout, activation)
        self.relation = Encoder(relation_layers, *args)
        self.sgtm_encoder = Encoder(sgtm_encoder_layers, *args)
        self.sgtm_decoder = Decoder(sgtm_decoder_layers, *args)
        self.target_decoder = Decoder(decoder_layers, *args)
        self.head = CornerHead(dim, head_channels, self.feat_size)
        total = max_text_len + template_tokens + 1 + self.search_tokens
        self.pos_embed = nn.Parameter(torch.empty(total, dim))
        self.sep_token = nn.Parameter(torch.empty(1, dim))
        self.target_query = nn.Parameter(torch.empty(1, dim))
        self.temporal_query = nn.Parameter(torch.empty(1, dim))
        self._compiled: dict[str, object] = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise the parts that are not pretrained backbones (official scheme)."""
        if self.pos_embed.is_meta:
            return
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.sep_token)
        nn.init.normal_(self.target_query)
        nn.init.normal_(self.temporal_query)
        for lin in (self.vision_proj, self.text_proj):
            nn.init.trunc_normal_(lin.weight, std=0.02)
            nn.init.zeros_(lin.bias)
        for m in self.relation.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        for mod in (self.sgtm_encoder, self.sgtm_decoder):
            for p in mod.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        for m in self.target_decoder.modules():
            if isinstance(m, nn.Linear) and m.weight.shape[0] == 3 * self.dim:
                nn.init.xavier_uniform_(m.weight)   # packed q/k/v, as nn.MultiheadAttention
                nn.init.zeros_(m.bias)

    # ----------------------------------------------------------------------------- options
    def set_precision(self, precision: str) -> None:
        """'fp32' (default), 'fp16' or 'bf16': autocast inside every public step."""
        dtypes = {'fp32': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}
        if precision not in dtypes:
            raise ConfigError(f'precision {precision!r}: expected one of {sorted(dtypes)}')
        self.autocast_dtype = dtypes[precision]

    def compile_steps(self, mode: str | None = None, backend: str = 'inductor') -> None:
        """Compile the per-frame parts (image encoder, relation step) with ``torch.compile``.

        Meant for CUDA; on CPU inductor compiles for minutes and gains little.
        """
        self._compiled = {
            'image': torch.compile(self._encode_image, mode=mode, backend=backend, dynamic=False),
            'relate': torch.compile(self._relate, mode=mode, backend=backend, dynamic=False),
        }

    def _autocast(self, device: torch.device):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.autocast_dtype)

    # ---------------------------------------------------------------------------- encoders
    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextFeatures:
        """Token ids (B, L) long and mask (B, L) (1 = token, 0 = padding), L <= max_text_len."""
        hidden, mask = self.text_hidden(input_ids, attention_mask)
        return self.project_text(hidden, mask)

    def text_hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Language encoder only: (B, max_text_len, C) hidden states and the padded mask.

        Split from ``project_text`` so training with a frozen encoder can cache this part.
        """
        if input_ids.dim() != 2 or input_ids.shape != attention_mask.shape:
            raise InputError(f'text input: expected input_ids and attention_mask of the same '
                             f'shape (B, L), got {tuple(input_ids.shape)} and '
                             f'{tuple(attention_mask.shape)}')
        b, n = input_ids.shape
        if n > self.max_text_len:
            raise InputError(f'text input: {n} tokens, at most {self.max_text_len} allowed')
        if n < self.max_text_len:  # the positional table has a fixed text length
            pad = self.max_text_len - n
            input_ids = F.pad(input_ids, (0, pad))
            attention_mask = F.pad(attention_mask, (0, pad))
        with self._autocast(input_ids.device):
            out = self.text(input_ids=input_ids, attention_mask=attention_mask,
                            token_type_ids=torch.zeros_like(input_ids))
        return out.last_hidden_state, attention_mask

    def project_text(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> TextFeatures:
        """(B, max_text_len, C) encoder states + (B, max_text_len) mask -> TextFeatures."""
        with self._autocast(hidden.device):
            tokens = self.text_proj(hidden)                       # (B, L, D)
        return TextFeatures(tokens, attention_mask == 0, tokens[:, 0])

    def _encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.vision_proj(self.vision(images))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float, ImageNet-normalised -> (B, H/16 * W/16, D) tokens."""
        if images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise InputError(f'images: expected a float tensor (B, 3, H, W), got '
                             f'{images.dtype} {tuple(images.shape)}')
        if images.shape[-1] % self.stride or images.shape[-2] % self.stride:
            raise InputError(f'images: H and W must be multiples of {self.stride}, got '
                             f'{tuple(images.shape[-2:])}')
        fn = self._compiled.get('image', self._encode_image)
        with self._autocast(images.device):
            return fn(images)

    @staticmethod
    def token_mask(pad_mask: torch.Tensor, stride: int = 16) -> torch.Tensor:
        """(B, H, W) bool pixel padding mask -> (B, H/stride * W/stride) token mask.

        Nearest-neighbour downsampling, i.e. the top-left pixel of each cell (official).
        """
        return pad_mask[:, ::stride, ::stride].flatten(1)

    # ------------------------------------------------------------------------------ steps
    def ground(self, text: TextFeatures, image_tokens: torch.Tensor,
               image_pad_mask: torch.Tensor | None = None) -> HeadOutput:
        """Find the described target in a whole (resized, padded) image.

        image_tokens (B, Ns, D) from ``encode_image`` of the grounding image; image_pad_mask
        (B, Ns) bool, True where the token covers padding.
        """
        template, template_pad = self.empty_template(image_tokens)
        return self._step(text, template, template_pad, image_tokens, image_pad_mask, None)

    def empty_template(self, image_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What grounding puts in the template slot: zeros (B, Nt, D), all padding (B, Nt)."""
        b = image_tokens.shape[0]
        template = image_tokens.new_zeros(b, self.template_tokens, self.dim)
        template_pad = torch.ones(b, self.template_tokens, dtype=torch.bool,
                                  device=image_tokens.device)
        return template, template_pad

    def track(self, text: TextFeatures, template_tokens: torch.Tensor,
              search_tokens: torch.Tensor, temporal: torch.Tensor | None = None, *,
              template_pad_mask: torch.Tensor | None = None,
              search_pad_mask: torch.Tensor | None = None) -> HeadOutput:
        """Locate the target in a search crop given the template and the RoI memory.

        template_tokens (B, Nt, D), search_tokens (B, Ns, D); temporal (B, T, D) is the
        ``temporal`` of the previous ``ground``/``track`` output, or None. The pad masks
        (B, Nt) / (B, Ns) bool flag tokens over padding outside the frame.
        """
        if template_tokens.shape[1] != self.template_tokens:
            raise InputError(f'template tokens: expected {self.template_tokens}, got '
                             f'{template_tokens.shape[1]}')
        return self._step(text, template_tokens, template_pad_mask, search_tokens,
                          search_pad_mask, temporal)

    def _step(self, text, template, template_pad, search, search_pad, temporal) -> HeadOutput:
        if search.dim() != 3 or search.shape[1:] != (self.search_tokens, self.dim):
            raise InputError(f'search tokens: expected (B, {self.search_tokens}, {self.dim}), '
                             f'got {tuple(search.shape)}')
        b = search.shape[0]
        dev = search.device
        if template_pad is None:
            template_pad = torch.zeros(b, template.shape[1], dtype=torch.bool, device=dev)
        if search_pad is None:
            search_pad = torch.zeros(b, search.shape[1], dtype=torch.bool, device=dev)
        elif search_pad.shape != search.shape[:2] or bool(search_pad.all(1).any()):
            raise InputError(f'search pad mask: expected (B, {self.search_tokens}) bool with '
                             f'some unpadded token per sample, got {tuple(search_pad.shape)}')
        fn = self._compiled.get('relate', self._relate)
        with self._autocast(dev):
            feats, box, p_tl, p_br = fn(text.tokens, text.pad_mask, template, template_pad,
                                        search, search_pad, temporal)
            roi = self._roi_tokens(feats, box)
        memory = next_memory(temporal, roi, self.roi_size, self.memory_frames)
        return HeadOutput(box, p_tl, p_br, memory, feats, corner_score(p_tl, p_br))

    def _relate(self, text_tokens, text_pad, template, template_pad, search, search_pad,
                temporal, temporal_gate=None):
        """Relation encoder, SGTM, target decoder and head; returns features, box, heatmaps.

        ``temporal_gate`` (B, 1, 1) scales the SGTM term of the query: an exported tracking
        graph always has a temporal input and switches it off with 0 (tracking without the
        clue); None (the eager model) adds it as is.
        """
        b = search.shape[0]
        sep = self.sep_token.expand(b, 1, self.dim).to(search.dtype)
        sep_pad = torch.zeros(b, 1, dtype=torch.bool, device=search.device)
        x = torch.cat((text_tokens.to(search.dtype), template.to(search.dtype), sep, search), 1)
        pad = torch.cat((text_pad, template_pad, sep_pad, search_pad), 1)
        pos = self.pos_embed.unsqueeze(0)
        if x.shape[1] != pos.shape[1]:
            raise InputError(f'token sequence: expected {pos.shape[1]} tokens (text '
                             f'{self.max_text_len}, template {self.template_tokens}, 1, search '
                             f'{self.search_tokens}), got {x.shape[1]}')
        x = self.relation(x, pad, pos)                          # (B, L, D)
        n = self.search_tokens
        search = x[:, -n:]
        query = self.target_query.expand(b, 1, self.dim)
        if temporal is not None and temporal.shape[1] > 0:
            # SGTM: encode [text CLS after relation, RoI memory], decode with a learned query.
            mem = self.sgtm_encoder(torch.cat((x[:, :1], temporal.to(x.dtype)), 1))
            tq = self.temporal_query.expand(b, 1, self.dim)
            sgtm = self.sgtm_decoder(torch.zeros_like(tq), mem, query_pos=tq)
            query = query + (sgtm if temporal_gate is None else sgtm * temporal_gate)
        target = self.target_decoder(query, search, search_pad, pos=pos[:, -n:])  # (B, 1, D)
        search = search + search * target
        s = self.feat_size
        feats = search.transpose(1, 2).reshape(b, self.dim, s, s)     # (B, D, S, S)
        xyxy, p_tl, p_br = self.head(feats)
        cx, cy = (xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2
        w = (xyxy[:, 2] - xyxy[:, 0]) * self.box_wh_scale
        h = (xyxy[:, 3] - xyxy[:, 1]) * self.box_wh_scale
        return feats, torch.stack((cx, cy, w, h), -1), p_tl, p_br

    def _roi_tokens(self, feats: torch.Tensor, box_cxcywh: torch.Tensor) -> torch.Tensor:
        """RoIAlign of the predicted box on the features -> (B, roi_size^2, D) tokens."""
        b = feats.shape[0]
        c = box_cxcywh.float() * self.search_size
        xyxy = torch.stack((c[:, 0] - c[:, 2] / 2, c[:, 1] - c[:, 3] / 2,
                            c[:, 0] + c[:, 2] / 2, c[:, 1] + c[:, 3] / 2), -1)
        idx = torch.arange(b, device=feats.device, dtype=xyxy.dtype)[:, None]
        rois = torch.cat((idx, xyxy), 1).to(feats.dtype)
        out = roi_align(feats, rois, (self.roi_size, self.roi_size), 1.0 / self.stride,
                        self.roi_sampling_ratio)                  # (B, D, r, r)
        return out.flatten(2).transpose(1, 2)


def corner_score(p_tl: torch.Tensor, p_br: torch.Tensor) -> torch.Tensor:
    """(B,) geometric mean of the two corner heatmaps' peaks, (B, S, S) each."""
    return (p_tl.flatten(1).amax(1) * p_br.flatten(1).amax(1)).sqrt()


def next_memory(temporal: torch.Tensor | None, roi: torch.Tensor, roi_size: int,
                memory_frames: int) -> torch.Tensor:
    """The RoI memory for the next frame: the anchor RoI (first in ``temporal``) + the RoIs
    of the latest ``memory_frames - 1`` frames, ``roi`` (B, roi_size^2, D) the newest."""
    if temporal is None or temporal.shape[1] == 0:
        return roi                          # this frame becomes the anchor
    r = roi_size ** 2
    if memory_frames == 1:
        return temporal[:, :r]
    keep = (memory_frames - 2) * r          # earlier frames kept beside the newest
    recent = temporal[:, r:]
    recent = recent[:, recent.shape[1] - min(keep, recent.shape[1]):]
    return torch.cat((temporal[:, :r], recent, roi.to(temporal.dtype)), 1)


def _build_vision(cfg: ModelConfig) -> tuple[nn.Module, int]:
    if cfg.vision == 'swin':
        from nl_tracker_ros.model.swin import SwinBackbone
        net = SwinBackbone(cfg.swin_embed_dim, cfg.swin_depths, cfg.swin_heads, cfg.swin_window,
                           cfg.swin_mlp_ratio, cfg.swin_drop_path, cfg.search_size)
        if cfg.vision_weights == 'package':
            raise ConfigError(f'model {cfg.name}: no Swin weights ship in a package; give a '
                              f'path to ImageNet Swin weights')
        if cfg.vision_weights:
            from nl_tracker_ros.model.checkpoint import load_swin_weights
            load_swin_weights(net, cfg.vision_weights)
        return net, net.out_channels
    from nl_tracker_ros.model import compact_backbones as cb
    cls = {'mobilenetv2': cb.MobileNetV2Features,
           'efficientnet_lite0': cb.EfficientNetLite0Features}[cfg.vision]
    net = cls()
    if cfg.vision_weights:
        cb.load_pretrained(net, None if cfg.vision_weights == 'package' else cfg.vision_weights)
    return _TokensFromMap(net), net.out_channels


class _TokensFromMap(nn.Module):
    """(B, C, H, W) feature map of a CNN -> (B, H*W, C) tokens."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images).flatten(2).transpose(1, 2)


def _build_text(cfg: ModelConfig) -> tuple[nn.Module, int]:
    from transformers import BertConfig, BertModel
    if cfg.text_weights:
        if cfg.text_weights == 'package':
            if cfg.text != 'minilm':
                raise ConfigError(f'model {cfg.name}: text_weights "package" is MiniLM only')
            from nl_tracker_ros.model.compact_backbones import build_minilm
            net = build_minilm(None)
        else:
            from nl_tracker_ros.model.checkpoint import load_bert_dir
            net = load_bert_dir(cfg.text_weights)
        if net.config.hidden_size != cfg.bert_hidden:
            raise ConfigError(f'model {cfg.name}: text weights {cfg.text_weights} are '
                              f'{net.config.hidden_size} wide, config says {cfg.bert_hidden}')
        return net, cfg.bert_hidden
    bc = BertConfig(vocab_size=cfg.bert_vocab, hidden_size=cfg.bert_hidden,
                    num_hidden_layers=cfg.bert_layers, num_attention_heads=cfg.bert_heads,
                    intermediate_size=cfg.bert_ffn, max_position_embeddings=cfg.bert_positions,
                    type_vocab_size=2, hidden_act='gelu', layer_norm_eps=1e-12)
    return BertModel(bc, add_pooling_layer=False), cfg.bert_hidden


def build_model(config: ModelConfig, device: str | torch.device | None = None) -> JointNLT:
    """Build a JointNLT from ``config`` (the only place that reads it); random weights unless
    the config names backbone weights. ``device='meta'`` builds shapes only (no memory)."""
    ctx = torch.device(device) if device is not None else contextlib.nullcontext()
    if device is not None and torch.device(device).type == 'meta':  # shapes only: no files
        config = dataclasses.replace(config, vision_weights='', text_weights='')
    with ctx:
        vision, vc = _build_vision(config)
        text, tc = _build_text(config)
        return JointNLT(
            vision, vc, text, tc, dim=config.dim, heads=config.heads, ffn=config.ffn,
            dropout=config.dropout, activation=config.activation,
            relation_layers=config.relation_layers,
            sgtm_encoder_layers=config.sgtm_encoder_layers,
            sgtm_decoder_layers=config.sgtm_decoder_layers,
            decoder_layers=config.decoder_layers, head_channels=config.head_channels,
            max_text_len=config.max_text_len, template_tokens=config.template_tokens,
            search_size=config.search_size, stride=config.stride, roi_size=config.roi_size,
            roi_sampling_ratio=config.roi_sampling_ratio, box_wh_scale=config.box_wh_scale,
            memory_frames=config.memory_frames)

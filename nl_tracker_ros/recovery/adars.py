"""Adaptive Retrieval Switch (AdaRS, Li et al., CVPRW 2022): does a proposal match the words?

The paper has no public code and its equations were not available here; this follows a written
description of them, and the comments mark the equation each step stands for and where it had to
be interpreted. One proposal (a box on the joint model's feature map) goes through:

- RoIAlign of the box on the relation-encoder features -> ``roi_size``^2 tokens.
- Object-aware attention memory (eq. 1-3): N learnable key-value pairs act as foreground
  classifiers; every token reads the memory (softmax over the N keys), and a linear layer on token
  + read-out gives a foreground logit; its sigmoid map re-weights the tokens, so background inside
  the box counts less. The foreground map is supervised by BCE against the ground-truth box
  (eq. 20, training/recovery_loss.py).
- Part-aware cross-attention (eq. 4-6): A learnable part prototypes are the queries of one
  cross-attention over the re-weighted tokens, with no self-attention among parts, then a
  residual feed-forward layer; the part attention maps get a diversity loss (eq. 17).
- Vision-language contrast (eq. 7-16): a global semantic prototype and L local semantic
  prototypes, *shared* by both modalities, each attend over one modality's tokens (region tokens +
  parts, or word tokens); with the GPO-pooled tokens (Chen et al., VSE-infinity, CVPR 2021) they
  are concatenated and projected to one unit-length embedding per modality. The local-prototype
  attention maps get the second diversity loss (eq. 18).
- Eq. 19: cosine similarity between each proposal's embedding and the description's.

Text is embedded once per command (``embed_text``); per frame only the k regions are embedded.
"""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from nl_tracker_ros.errors import InputError


def sinusoid(n: int, dim: int, device=None) -> torch.Tensor:
    """Sinusoidal position encodings (n, dim) for positions 0..n-1."""
    pos = torch.arange(n, dtype=torch.float32, device=device).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device)
                     * (-math.log(10000.0) / dim))
    pe = torch.zeros(n, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe


class GPO(nn.Module):
    """Generalised pooling operator (VSE-infinity): learned weights over sorted features.

    Each feature dimension is sorted in descending order over the set; a bidirectional GRU over
    position encodings of the ranks 0..n-1 gives one weight per rank (softmax, temperature 0.1),
    so the pool can be anything between max and mean, learned. Weights depend only on the set
    size, so they are computed once per distinct size.
    """

    def __init__(self, pe_dim: int = 32, hidden: int = 32):
        super().__init__()
        self.pe_dim = pe_dim
        self.gru = nn.GRU(pe_dim, hidden, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(hidden, 1, bias=False)
        self._cache: dict = {}

    def rank_weights(self, lengths: torch.Tensor, n: int) -> torch.Tensor:
        """Return pooling weights (B, n) for sets of ``lengths`` padded to ``n``."""
        sizes, inverse = torch.unique(lengths, return_inverse=True)
        pe = sinusoid(n, self.pe_dim, lengths.device).expand(len(sizes), n, self.pe_dim)
        packed = nn.utils.rnn.pack_padded_sequence(pe, sizes.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=n)
        half = out.shape[-1] // 2
        logits = self.linear((out[..., :half] + out[..., half:]) / 2).squeeze(-1)  # (U, n)
        rank = torch.arange(n, device=lengths.device)
        logits = logits.masked_fill(rank.unsqueeze(0) >= sizes.unsqueeze(1), -math.inf)
        return torch.softmax(logits / 0.1, dim=1)[inverse]

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pool tokens (B, n, D) with optional padding mask (B, n) True=pad -> (B, D)."""
        b, n, _ = x.shape
        if pad_mask is None:
            lengths = torch.full((b,), n, dtype=torch.long, device=x.device)
        else:
            lengths = (~pad_mask).sum(1).clamp_min(1)
            x = x.masked_fill(pad_mask.unsqueeze(-1), -math.inf)
        # sort along a contiguous last axis: much faster than sorting over dim 1 on CPU
        ranked = x.transpose(1, 2).contiguous().sort(dim=-1, descending=True).values
        ranked = ranked.masked_fill(torch.isinf(ranked), 0.0)                 # (B, D, n)
        w = self._weights(lengths, n)                                      # (B, n)
        return (ranked * w.unsqueeze(1)).sum(-1)

    def _weights(self, lengths: torch.Tensor, n: int) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            self._cache.clear()
            return self.rank_weights(lengths, n)
        # inference: the weights depend only on (length, n); the GRU runs once per size
        key = (tuple(lengths.tolist()), n, lengths.device)
        if key not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = self.rank_weights(lengths, n)
        return self._cache[key]


@dataclasses.dataclass
class RegionAux:
    """Intermediate maps of ``embed_regions``, needed by the training losses."""

    fg_logits: torch.Tensor    # (n, M) foreground logits of the RoI cells (eq. 3, 20)
    part_attn: torch.Tensor    # (n, A, M) part-prototype attention (eq. 5, 17)
    proto_attn: torch.Tensor   # (n, 1+L, M+A) semantic-prototype attention (eq. 8, 18)


class AdaptiveRetrievalSwitch(nn.Module):
    """Scores box proposals against a description; see the module docstring."""

    def __init__(self, feat_dim: int, text_dim: int, dim: int = 256, roi_size: int = 7,
                 fg_classifiers: int = 8, parts: int = 4, local_prototypes: int = 4,
                 heads: int = 4, gpo_dim: int = 32):
        super().__init__()
        self.roi_size = roi_size
        self.vis_in = nn.Conv2d(feat_dim, dim, 1)
        self.txt_in = nn.Linear(text_dim, dim)
        # eq. 1-3: object-aware attention memory
        self.fg_keys = nn.Parameter(torch.randn(fg_classifiers, dim) * dim ** -0.5)
        self.fg_values = nn.Parameter(torch.randn(fg_classifiers, dim) * dim ** -0.5)
        self.fg_head = nn.Linear(dim, 1)
        # eq. 4-6: part-aware cross-attention (queries = parts, no self-attention)
        self.parts = nn.Parameter(torch.randn(parts, dim) * dim ** -0.5)
        self.part_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.part_norm = nn.LayerNorm(dim)
        self.part_ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.part_norm2 = nn.LayerNorm(dim)
        # eq. 7-16: shared global + local semantic prototypes, GPO per modality
        self.prototypes = nn.Parameter(torch.randn(1 + local_prototypes, dim) * dim ** -0.5)
        self.gpo_v = GPO(gpo_dim, gpo_dim)
        self.gpo_t = GPO(gpo_dim, gpo_dim)
        width = dim * (2 + local_prototypes)
        self.proj_v = nn.Linear(width, dim)
        self.proj_t = nn.Linear(width, dim)

    def roi_features(self, features: torch.Tensor, boxes_cxcywh: torch.Tensor) -> torch.Tensor:
        """Project features (B, C, S, S) to the switch width, then RoIAlign normalised boxes
        (B, K, 4) -> (B*K, dim, R, R).

        The 1x1 projection commutes with RoIAlign's bilinear sampling, so projecting the map
        first gives the same tokens at a fraction of the cost when C > dim or K is large.
        """
        if features.dim() != 4 or boxes_cxcywh.dim() != 3 or boxes_cxcywh.shape[-1] != 4 \
                or boxes_cxcywh.shape[0] != features.shape[0]:
            raise InputError(f'switch: expected features (B, C, S, S) and boxes (B, K, 4), got '
                             f'{tuple(features.shape)} and {tuple(boxes_cxcywh.shape)}')
        b, k, _ = boxes_cxcywh.shape
        h, w = features.shape[-2:]
        c = boxes_cxcywh.to(features.dtype)
        scale = c.new_tensor([w, h, w, h])
        xyxy = torch.cat([c[..., :2] - c[..., 2:] / 2, c[..., :2] + c[..., 2:] / 2], -1) * scale
        idx = torch.arange(b, device=c.device, dtype=c.dtype).repeat_interleave(k).unsqueeze(1)
        rois = torch.cat([idx, xyxy.reshape(b * k, 4)], 1)
        return roi_align(self.vis_in(features), rois, self.roi_size, spatial_scale=1.0,
                         sampling_ratio=2, aligned=True)

    def _prototypes(self, tokens: torch.Tensor, pad_mask: torch.Tensor | None):
        # eq. 7-9 (interpreted): shared prototypes attend over one modality's tokens
        logits = torch.einsum('pd,nmd->npm', self.prototypes, tokens) / math.sqrt(tokens.shape[-1])
        if pad_mask is not None:
            logits = logits.masked_fill(pad_mask.unsqueeze(1), -math.inf)
        attn = logits.softmax(-1)                                          # (n, 1+L, M)
        return attn @ tokens, attn                                         # (n, 1+L, D)

    def _embed(self, tokens, pad_mask, gpo, proj):
        protos, attn = self._prototypes(tokens, pad_mask)
        pooled = gpo(tokens, pad_mask)                                     # (n, D)
        joint = torch.cat([protos.flatten(1), pooled], 1)                  # eq. 10-16: concat
        return F.normalize(proj(joint), dim=-1), attn

    def embed_regions(self, rois: torch.Tensor) -> tuple[torch.Tensor, RegionAux]:
        """Embed ``roi_features`` output (n, dim, R, R) -> unit vectors (n, dim) and aux maps."""
        x = rois.flatten(2).transpose(1, 2)                                # (n, M, D)
        d = x.shape[-1]
        # eq. 1-3: read the key-value memory; sigmoid foreground map re-weights the tokens
        read = (x @ self.fg_keys.t() / math.sqrt(d)).softmax(-1) @ self.fg_values
        x = x + read
        fg_logits = self.fg_head(x).squeeze(-1)                            # (n, M)
        x = x * torch.sigmoid(fg_logits).unsqueeze(-1)
        # eq. 4-6: part prototypes cross-attend to the object tokens
        q = self.parts.unsqueeze(0).expand(x.shape[0], -1, -1)
        out, part_attn = self.part_attn(q, x, x, need_weights=True)
        p = self.part_norm(q + out)
        p = self.part_norm2(p + self.part_ffn(p))                          # (n, A, D)
        tokens = torch.cat([x, p], 1)
        emb, proto_attn = self._embed(tokens, None, self.gpo_v, self.proj_v)
        return emb, RegionAux(fg_logits, part_attn, proto_attn)

    def embed_text(self, tokens: torch.Tensor, pad_mask: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed word tokens (B, L, Dt), pad mask (B, L) True=pad -> ((B, dim), attention)."""
        t = self.txt_in(tokens)
        return self._embed(t, pad_mask, self.gpo_t, self.proj_t)

    @staticmethod
    def similarity(region_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """Eq. 19: cosine similarity of region embeddings (B, K, D) with texts (B, D) -> (B, K)."""
        return torch.einsum('bkd,bd->bk', region_emb, text_emb)

    def forward(self, features: torch.Tensor, boxes_cxcywh: torch.Tensor,
                text_emb: torch.Tensor) -> tuple[torch.Tensor, RegionAux]:
        """Similarities (B, K) of boxes (B, K, 4) on features (B, C, S, S) to ``text_emb``."""
        b, k = boxes_cxcywh.shape[:2]
        emb, aux = self.embed_regions(self.roi_features(features, boxes_cxcywh))
        return self.similarity(emb.view(b, k, -1), text_emb), aux


def decide(similarity: torch.Tensor, valid: torch.Tensor, threshold: float
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Best valid proposal per row and whether it clears ``threshold`` (else: the target is lost).

    Returns (index (B,) long, holds (B,) bool).
    """
    s = similarity.masked_fill(~valid, -math.inf)
    best, idx = s.max(1)
    return idx, best > threshold

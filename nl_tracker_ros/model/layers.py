"""Transformer layers of the relation model, SGTM and target decoder, and the corner head.

Post-norm DETR-style layers: positional embeddings are added to queries and keys, never to
values. Attention runs through ``F.scaled_dot_product_attention`` (fused kernels), batch first.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _act(name: str):
    if name == 'gelu':
        return F.gelu
    if name == 'relu':
        return F.relu
    raise ValueError(f'activation {name!r}: expected gelu or relu')


class Attention(nn.Module):
    """Multi-head attention with one packed q/k/v projection (nn.MultiheadAttention layout)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                key_pad: torch.Tensor | None = None) -> torch.Tensor:
        """q (B, Lq, D), k and v (B, Lk, D), key_pad (B, Lk) bool True=ignore -> (B, Lq, D)."""
        b, lq, d = q.shape
        w, bias = self.qkv.weight, self.qkv.bias
        if q is k:  # self-attention: one matmul for q and k
            qk = F.linear(q, w[:2 * d], bias[:2 * d])
            q_, k_ = qk.split(d, dim=-1)
        else:
            q_ = F.linear(q, w[:d], bias[:d])
            k_ = F.linear(k, w[d:2 * d], bias[d:2 * d])
        v_ = F.linear(v, w[2 * d:], bias[2 * d:])
        h = self.heads
        q_ = q_.view(b, lq, h, -1).transpose(1, 2)            # (B, h, Lq, d/h)
        k_ = k_.view(b, k_.shape[1], h, -1).transpose(1, 2)
        v_ = v_.view(b, v_.shape[1], h, -1).transpose(1, 2)
        mask = None
        if key_pad is not None:
            mask = ~key_pad[:, None, None, :]                  # True = attend
        out = F.scaled_dot_product_attention(
            q_, k_, v_, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(b, lq, d))


class EncoderLayer(nn.Module):
    """Self-attention + feed-forward, each followed by residual and LayerNorm."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float, activation: str) -> None:
        super().__init__()
        self.attn = Attention(dim, heads, dropout)
        self.fc1 = nn.Linear(dim, ffn)
        self.fc2 = nn.Linear(ffn, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.act = _act(activation)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None = None,
                pos: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, L, D), pad (B, L) bool, pos (1|B, L, D) -> (B, L, D)."""
        qk = x if pos is None else x + pos
        x = self.norm1(x + self.drop(self.attn(qk, qk, x, pad)))
        return self.norm2(x + self.drop(self.fc2(self.drop(self.act(self.fc1(x))))))


class DecoderLayer(nn.Module):
    """Query self-attention, cross-attention to memory, feed-forward; post-norm."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float, activation: str) -> None:
        super().__init__()
        self.self_attn = Attention(dim, heads, dropout)
        self.cross_attn = Attention(dim, heads, dropout)
        self.fc1 = nn.Linear(dim, ffn)
        self.fc2 = nn.Linear(ffn, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.act = _act(activation)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor,
                memory_pad: torch.Tensor | None = None, pos: torch.Tensor | None = None,
                query_pos: torch.Tensor | None = None) -> torch.Tensor:
        """tgt (B, Q, D), memory (B, L, D), pos for memory keys, query_pos for queries."""
        q = tgt if query_pos is None else tgt + query_pos
        tgt = self.norm1(tgt + self.drop(self.self_attn(q, q, tgt)))
        q = tgt if query_pos is None else tgt + query_pos
        k = memory if pos is None else memory + pos
        tgt = self.norm2(tgt + self.drop(self.cross_attn(q, k, memory, memory_pad)))
        return self.norm3(tgt + self.drop(self.fc2(self.drop(self.act(self.fc1(tgt))))))


class Encoder(nn.Module):
    """A stack of ``EncoderLayer`` (no final norm: post-norm layers end normalised)."""

    def __init__(self, layers: int, dim: int, heads: int, ffn: int, dropout: float,
                 activation: str) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(dim, heads, ffn, dropout, activation) for _ in range(layers))

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None = None,
                pos: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, D) -> (B, L, D)."""
        for layer in self.layers:
            x = layer(x, pad, pos)
        return x


class Decoder(nn.Module):
    """A stack of ``DecoderLayer`` followed by a LayerNorm."""

    def __init__(self, layers: int, dim: int, heads: int, ffn: int, dropout: float,
                 activation: str) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderLayer(dim, heads, ffn, dropout, activation) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor,
                memory_pad: torch.Tensor | None = None, pos: torch.Tensor | None = None,
                query_pos: torch.Tensor | None = None) -> torch.Tensor:
        """(B, Q, D) queries over (B, L, D) memory -> (B, Q, D)."""
        for layer in self.layers:
            tgt = layer(tgt, memory, memory_pad, pos, query_pos)
        return self.norm(tgt)


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class CornerHead(nn.Module):
    """STARK corner predictor: two conv towers score top-left and bottom-right corners.

    Corners are soft-argmax expectations over the S x S score maps at cell origins
    (index * stride), normalised by the input size S * stride.
    """

    def __init__(self, dim: int, channels: int, feat_size: int) -> None:
        super().__init__()
        self.feat_size = feat_size

        def tower() -> nn.Sequential:
            c = channels
            return nn.Sequential(_conv_bn_relu(dim, c), _conv_bn_relu(c, c // 2),
                                 _conv_bn_relu(c // 2, c // 4), _conv_bn_relu(c // 4, c // 8),
                                 nn.Conv2d(c // 8, 1, 1))
        self.tl = tower()
        self.br = tower()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, D, S, S) -> box_xyxy (B, 4) in [0, 1], prob_tl and prob_br (B, S, S)."""
        b, _, s, _ = x.shape
        p_tl = self.tl(x).flatten(1).float().softmax(-1).view(b, s, s)
        p_br = self.br(x).flatten(1).float().softmax(-1).view(b, s, s)
        grid = torch.arange(s, device=x.device, dtype=p_tl.dtype) / s   # cell origins
        tl_x = (p_tl.sum(1) * grid).sum(-1)
        tl_y = (p_tl.sum(2) * grid).sum(-1)
        br_x = (p_br.sum(1) * grid).sum(-1)
        br_y = (p_br.sum(2) * grid).sum(-1)
        return torch.stack((tl_x, tl_y, br_x, br_y), -1), p_tl, p_br

"""Swin Transformer stages 1-3 (stride 16) from timm, run the way the official JointNLT runs it.

The modules (and so the weight layout) are timm's ``SwinTransformer``; the block forward is our
own because the official model pads each feature map to a multiple of the window size *before*
the cyclic shift and builds the shift mask on the padded grid, while timm shifts first. Tracking
crops (32x32, 80x80 ... tokens) are never multiples of 7, so the order matters for equivalence.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models.swin_transformer import SwinTransformer, window_partition, window_reverse
from torch import nn


def shift_mask(hp: int, wp: int, window: int, shift: int, device, dtype) -> torch.Tensor:
    """(nW, window^2, window^2) additive mask (0 / -100) of shifted windows on an hp x wp grid."""
    img = torch.zeros(1, hp, wp, 1, device=device, dtype=dtype)
    cuts = ((0, -window), (-window, -shift), (-shift, None))
    region = 0
    for h0, h1 in cuts:
        for w0, w1 in cuts:
            img[:, h0:h1, w0:w1, :] = region
            region += 1
    win = window_partition(img, (window, window)).view(-1, window * window)
    diff = win.unsqueeze(1) - win.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


class SwinBackbone(nn.Module):
    """Swin stages -> final-stage tokens normalised by ``out_norms[-1]``, (B, H/16*W/16, C)."""

    def __init__(self, embed_dim: int, depths: tuple[int, ...], heads: tuple[int, ...],
                 window: int, mlp_ratio: float, drop_path: float, img_size: int) -> None:
        super().__init__()
        self.window = window
        self.swin = SwinTransformer(
            img_size=img_size, patch_size=4, embed_dim=embed_dim, depths=depths,
            num_heads=heads, window_size=window, mlp_ratio=mlp_ratio, num_classes=0,
            drop_path_rate=drop_path, strict_img_size=False,
            always_partition=True)  # keep the window size whatever the input size
        # The official backbone normalises every stage output (norm0..norm2) and uses the last;
        # timm's single final norm and classifier head are not used.
        self.swin.norm = nn.Identity()
        self.swin.head = nn.Identity()
        dims = [embed_dim * 2 ** i for i in range(len(depths))]
        self.out_norms = nn.ModuleList(nn.LayerNorm(d) for d in dims)
        self.out_channels = dims[-1]
        for stage in self.swin.layers:
            for blk in stage.blocks:
                # Persistent like the official checkpoint (deterministic; checked on load).
                index = blk.attn.relative_position_index
                blk.attn.register_buffer('relative_position_index', index, persistent=True)
        self._masks: dict[tuple, torch.Tensor] = {}

    def _mask(self, hp: int, wp: int, x: torch.Tensor) -> torch.Tensor:
        key = (hp, wp, x.device, x.dtype)
        if key not in self._masks:
            self._masks[key] = shift_mask(hp, wp, self.window, self.window // 2, x.device,
                                          x.dtype)
        return self._masks[key]

    def _block(self, blk, x: torch.Tensor, shifted: bool) -> torch.Tensor:
        b, h, w, c = x.shape                                   # (B, H, W, C)
        ws, attn = self.window, blk.attn
        heads = attn.num_heads
        # The official code pads the normalised map with zeros before q/k/v; a zero token's
        # q/k/v is the bias, so project the real tokens only and pad with the bias.
        qkv = attn.qkv(blk.norm1(x))                           # (B, H, W, 3C)
        hp, wp = h + (ws - h % ws) % ws, w + (ws - w % ws) % ws
        if (hp, wp) != (h, w):
            full = qkv.new_empty(b, hp, wp, 3 * c)
            full[:] = attn.qkv.bias.to(qkv.dtype)
            full[:, :h, :w] = qkv
            qkv = full
        mask = attn._get_rel_pos_bias().to(qkv.dtype)           # (1, heads, ws^2, ws^2)
        if shifted:
            qkv = torch.roll(qkv, shifts=(-(ws // 2), -(ws // 2)), dims=(1, 2))
            shift = self._mask(hp, wp, qkv)                    # (nW, ws^2, ws^2)
            mask = (mask + shift.unsqueeze(1)).repeat(b, 1, 1, 1)
        win = window_partition(qkv, (ws, ws)).view(-1, ws * ws, 3, heads, c // heads)
        q, k, v = win.permute(2, 0, 3, 1, 4).unbind(0)          # (B*nW, heads, ws^2, c/heads)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=attn.attn_drop.p if self.training else 0.0)
        y = window_reverse(y.transpose(1, 2).reshape(-1, ws, ws, c), (ws, ws), hp, wp)
        if shifted:
            y = torch.roll(y, shifts=(ws // 2, ws // 2), dims=(1, 2))
        y = attn.proj_drop(attn.proj(y[:, :h, :w]))
        x = x + blk.drop_path1(y)
        return x + blk.drop_path2(blk.mlp(blk.norm2(x)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) ImageNet-normalised -> (B, H/16 * W/16, C) tokens."""
        h, w = images.shape[-2:]
        if h % 4 or w % 4:  # the official patch embedding pads right/bottom
            images = F.pad(images, (0, -w % 4, 0, -h % 4))
        x = self.swin.patch_embed(images)                      # (B, H/4, W/4, C)
        for stage in self.swin.layers:
            x = stage.downsample(x)
            for i, blk in enumerate(stage.blocks):
                x = self._block(blk, x, shifted=i % 2 == 1)
        return self.out_norms[-1](x.flatten(1, 2))

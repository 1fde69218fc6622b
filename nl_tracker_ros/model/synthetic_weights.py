"""Deterministic synthetic weights in the official JointNLT checkpoint layout.

For checks against the official code without its checkpoint: every tensor is a pure function of
(seed, key name, shape), bit-identical on every platform and library version. Values come from
a counter-based integer hash (splitmix64 over the element index, seeded per key from SHA-256 of
``'{seed}:{key}'``) and exact float32 arithmetic; no library random generator is involved.

The scale of each tensor follows its role, so every part of the network shapes the output:
norm weights 1 +- 0.2, BatchNorm statistics around 0 / 1, biases std 0.1, linear and conv weights
of unit gain (std 1/sqrt(fan-in); see ``_gain`` for the exceptions), embedding tables and Swin
position-bias tables std 1; uniform with those means and stds. The Swin
``relative_position_index`` buffers are the derived window index, as in any real file.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import torch

from nl_tracker_ros.model.config import ModelConfig

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)

# Tensors whose std is not the default for their rank.
_EMBEDDINGS = ('vl_pos_embed.weight', 'sep_embed.weight', 'target_query_embed.weight',
               'temporal_query_embed.weight', '_embeddings.weight')


def _gain(key: str) -> float:
    """Gain of a weight matrix over the unit-gain default."""
    if key.endswith('in_proj_weight'):
        # Sharper attention in the relation model, SGTM and decoder: with unit gain attention is
        # near-uniform and the search tokens collapse to one vector, flattening the score maps.
        return 2.0
    if key.startswith('box_head.conv5_'):
        return 8.0      # peaked corner score maps, so that boxes move with the features
    return 1.0


def official_layout(config: ModelConfig) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Official key -> (shape, dtype) of a checkpoint for ``config``, derived from our model.

    Built on the meta device (no memory) and renamed with the loader's own table, so it is the
    layout ``load_weights`` accepts; sorted by key.
    """
    from nl_tracker_ros.model.checkpoint import to_official
    from nl_tracker_ros.model.jointnlt import build_model

    own = build_model(config, device='meta').state_dict()
    state, unmatched = to_official(own, config)
    if unmatched:
        raise ValueError(f'model {config.name}: keys without an official name: {unmatched[:5]}')
    return {k: (tuple(state[k].shape), state[k].dtype) for k in sorted(state)}


def key_seed(key: str, seed: int = 0) -> int:
    """64-bit seed of one tensor: the first 8 bytes of SHA-256('{seed}:{key}')."""
    return int.from_bytes(hashlib.sha256(f'{seed}:{key}'.encode()).digest()[:8], 'little')


def uniform(seed64: int, n: int, chunk: int = 1 << 16) -> np.ndarray:
    """``n`` float32 values uniform on (-1, 1) (odd multiples of 2^-24), a pure function of
    ``seed64``: splitmix64 of the counters ``seed64 + i * gamma``, i = 1..n.

    Worked in cache-sized chunks with in-place uint64 arithmetic (wrapping), about 0.7 s for the
    193M values of jointnlt-base.
    """
    out = np.empty(n, np.float32)
    counters = np.arange(1, min(chunk, n) + 1, dtype=np.uint64)
    z, t = np.empty_like(counters), np.empty_like(counters)
    k = np.empty(len(counters), np.int64)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        zz, tt, kk = z[:m], t[:m], k[:m]
        np.add(counters[:m], np.uint64(start), out=zz)
        zz *= _GAMMA
        zz += np.uint64(seed64)
        for shift, mul in ((30, _M1), (27, _M2), (31, None)):
            np.right_shift(zz, np.uint64(shift), out=tt)
            zz ^= tt
            if mul is not None:
                zz *= mul
        np.right_shift(zz, np.uint64(40), out=tt)            # 24 random bits
        kk[:] = tt.view(np.int64)
        kk *= 2
        kk -= (1 << 24) - 1                                 # odd integers in (-2^24, 2^24)
        out[start:start + m] = kk                           # exact in float32
    out *= np.float32(2.0 ** -24)                           # exact: a power of two
    return out


def _std_and_offset(key: str, shape: tuple[int, ...]) -> tuple[float, float]:
    """(std, mean) of the synthetic values of ``key``."""
    leaf = key.rsplit('.', 1)[-1]
    if any(key.endswith(e) for e in _EMBEDDINGS) or leaf == 'relative_position_bias_table':
        return 1.0, 0.0
    if leaf == 'running_mean':
        return 0.1, 0.0
    if leaf == 'running_var':
        return 0.25, 1.0
    if len(shape) == 1 and leaf == 'weight':                # LayerNorm / BatchNorm scale
        return 0.2, 1.0
    if len(shape) == 1:                                     # biases (in_proj_bias included)
        return 0.1, 0.0
    fan_in = math.prod(shape[1:])
    return _gain(key) / math.sqrt(fan_in), 0.0


def synthetic_tensor(key: str, shape: tuple[int, ...], dtype: torch.dtype = torch.float32,
                     seed: int = 0, window: int = 7) -> torch.Tensor:
    """The synthetic value of one official key (``window``: Swin window, for the index)."""
    leaf = key.rsplit('.', 1)[-1]
    if leaf == 'relative_position_index':
        from timm.models.swin_transformer import get_relative_position_index
        return get_relative_position_index(window, window).to(dtype).reshape(shape)
    if leaf == 'num_batches_tracked':
        return torch.zeros(shape, dtype=dtype)
    std, mean = _std_and_offset(key, shape)
    values = uniform(key_seed(key, seed), math.prod(shape))
    values *= np.float32(std * math.sqrt(3.0))              # uniform with this std
    if mean:
        values += np.float32(mean)
    return torch.from_numpy(values.reshape(shape)).to(dtype)


def synthetic_official_state(config: ModelConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """A full official-layout state dict (the ``net`` entry of a checkpoint) for ``config``."""
    return {k: synthetic_tensor(k, shape, dtype, seed, config.swin_window)
            for k, (shape, dtype) in official_layout(config).items()}

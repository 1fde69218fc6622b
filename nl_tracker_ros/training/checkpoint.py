"""Training checkpoints: weights as safetensors, optimizer state in a weights-only torch file.

A run directory holds ``weights.safetensors`` (our key names; what ``TrackerConfig.weights``
loads) and ``train_state.pt`` (step, optimizer state, torch RNG state, the training config as
JSON). Both are written to a temporary name first and renamed, so an interrupted save never
leaves a half-written checkpoint.
"""
from __future__ import annotations

import json
import os
import pathlib

import torch
from torch import nn

from nl_tracker_ros.errors import CheckpointError
from nl_tracker_ros.model import checkpoint as model_ckpt

WEIGHTS = 'weights.safetensors'
STATE = 'train_state.pt'


def save_checkpoint(out_dir: str | pathlib.Path, model: nn.Module,
                    optimizer: torch.optim.Optimizer, step: int, train_config: dict,
                    model_config=None) -> pathlib.Path:
    """Write weights and training state of ``step`` to ``out_dir``; returns the weights path."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (WEIGHTS + '.tmp')
    model_ckpt.save_weights(model, tmp, model_config)
    os.replace(tmp, out / WEIGHTS)
    state = {'step': int(step), 'optimizer': optimizer.state_dict(),
             'torch_rng': torch.get_rng_state(), 'config': json.dumps(train_config)}
    tmp = out / (STATE + '.tmp')
    torch.save(state, tmp)
    os.replace(tmp, out / STATE)
    return out / WEIGHTS


def load_checkpoint(out_dir: str | pathlib.Path, model: nn.Module,
                    optimizer: torch.optim.Optimizer, model_config) -> tuple[int, dict]:
    """Restore weights, optimizer and RNG from ``out_dir``; return (step, saved train config)."""
    out = pathlib.Path(out_dir)
    for name in (WEIGHTS, STATE):
        if not (out / name).is_file():
            raise CheckpointError(f'resume {out}: {name} not found')
    model_ckpt.load_weights(model, out / WEIGHTS, model_config)
    try:
        state = torch.load(out / STATE, map_location='cpu', weights_only=True)
        step = int(state['step'])
        optimizer.load_state_dict(state['optimizer'])
        saved = json.loads(state['config'])
        rng = state['torch_rng']
    except CheckpointError:
        raise
    except Exception as exc:  # corrupt file, other optimizer layout, missing entries
        raise CheckpointError(f'resume {out / STATE}: unusable training state '
                              f'({type(exc).__name__}: {exc})') from None
    torch.set_rng_state(rng)
    return step, saved

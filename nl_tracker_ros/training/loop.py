"""The training loop: sample, ground, track, two-step loss, AdamW step, log, checkpoint."""
from __future__ import annotations

import dataclasses
import math
import pathlib
import time
from typing import Callable, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from nl_tracker_ros import preprocessing as pp
from nl_tracker_ros.config import to_dict
from nl_tracker_ros.errors import ConfigError, TrackerError
from nl_tracker_ros.text import TextTokenizer
from nl_tracker_ros.training.checkpoint import load_checkpoint, save_checkpoint
from nl_tracker_ros.training.data import Batch, SampleConfig, collate
from nl_tracker_ros.training.loss import cxcywh_to_xyxy, giou_loss, joint_loss
from nl_tracker_ros.training.optim import build_optimizer, build_scheduler


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training settings; defaults follow the paper and the official configuration."""

    preset: str = 'jointnlt-compact'   # model preset to train
    init_weights: str = ''             # start from these weights ('' = the preset's init)
    steps: int = 10000                 # optimizer steps
    batch_size: int = 8                # samples per step (official: 8)
    lr: float = 1e-4                   # everything but the backbones
    backbone_lr: float = 1e-5          # vision and language encoders
    weight_decay: float = 1e-4         # AdamW
    giou_weight: float = 2.0
    l1_weight: float = 5.0
    grad_clip: float = 0.1             # max gradient norm (official); 0 = off
    lr_drop_at: float = 0.667          # fraction of the steps after which lr drops
    lr_drop_factor: float = 0.1
    warmup_steps: int = 0              # linear lr warm-up (official: 10% of training)
    precision: Literal['fp32', 'bf16', 'fp16'] = 'fp32'  # autocast; fp16 adds loss scaling
    samples: SampleConfig = SampleConfig()
    seed: int = 0                      # model init, dropout and sample order
    log_every: int = 10                # steps between progress lines
    save_every: int = 500              # steps between checkpoints (and at the end)
    device: str = 'auto'
    workers: int = 0                   # DataLoader worker processes
    # Parameter-name prefixes kept fixed ('text', 'vision'), and exceptions to them (e.g.
    # 'vision.body.features.13'). A fully frozen language encoder runs once per description:
    # its outputs are cached (in eval mode) and only the projection trains.
    freeze: tuple[str, ...] = ()
    unfreeze: tuple[str, ...] = ()
    threads: int = 0                   # torch CPU threads; 0 = torch's default
    max_minutes: float = 0.0           # stop (with a checkpoint) after this wall time; 0 = off

    def __post_init__(self):
        for name in ('steps', 'batch_size', 'log_every', 'save_every'):
            if getattr(self, name) < 1:
                raise ConfigError(f'train.{name}: expected >= 1, got {getattr(self, name)}')
        if self.lr <= 0 or self.backbone_lr < 0:
            raise ConfigError(f'train: expected lr > 0 and backbone_lr >= 0, got {self.lr} '
                              f'and {self.backbone_lr}')
        if self.workers < 0 or self.warmup_steps < 0:
            raise ConfigError(f'train: expected workers >= 0 and warmup_steps >= 0, got '
                              f'{self.workers} and {self.warmup_steps}')
        if self.precision not in ('fp32', 'bf16', 'fp16'):
            raise ConfigError(f"train.precision: expected 'fp32', 'bf16' or 'fp16', got "
                              f"{self.precision!r}")


@dataclasses.dataclass
class TrainResult:
    """What a run did: the last step, the loss of every step run, the weights written."""

    step: int
    losses: list[float]
    stats: dict[str, float]
    weights: pathlib.Path | None


class _Indices(Dataset):
    """Sample ``start + i`` of ``data``: the sample order is fixed by the step index."""

    def __init__(self, data, start: int, count: int):
        self.data, self.start, self.count = data, start, count

    def __len__(self):
        return self.count

    def __getitem__(self, i):
        return self.data[self.start + i]


def _matches(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + '.') for p in prefixes)


def freeze_parameters(model: torch.nn.Module, freeze, unfreeze=()) -> int:
    """Stop gradients of parameters under ``freeze`` but not ``unfreeze``; returns their count."""
    n = 0
    for name, p in model.named_parameters():
        if _matches(name, freeze) and not _matches(name, unfreeze):
            p.requires_grad_(False)
            n += p.numel()
    return n


class TextCache:
    """Outputs of a frozen language encoder, one per token sequence (descriptions repeat)."""

    def __init__(self) -> None:
        self._store: dict[bytes, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self._store)

    def __call__(self, model, ids: torch.Tensor, mask: torch.Tensor):
        """TextFeatures of (B, L) ids/mask: cached encoder states through the live projection."""
        hidden, masks = [], []
        for i in range(ids.shape[0]):
            key = ids[i].cpu().numpy().tobytes()
            if key not in self._store:
                with torch.no_grad():
                    h, m = model.text_hidden(ids[i:i + 1], mask[i:i + 1])
                self._store[key] = (h[0].detach(), m[0])
            h, m = self._store[key]
            hidden.append(h)
            masks.append(m)
        return model.project_text(torch.stack(hidden), torch.stack(masks))


def step_loss(model, batch: Batch, config: TrainConfig, model_config,
              text_cache: TextCache | None = None) -> tuple[torch.Tensor, dict]:
    """Ground on the grounding image, then track through the search crops; the joint loss."""
    if text_cache is not None:
        text = text_cache(model, batch.text_ids, batch.text_mask)
    else:
        text = model.encode_text(batch.text_ids, batch.text_mask)
    k, b = batch.search.shape[:2]
    # Grounding image and search crops share a size: one backbone call for all of them.
    tokens = model.encode_image(torch.cat((batch.ground, batch.search.flatten(0, 1))))
    ground = model.ground(text, tokens[:b], batch.ground_pad)
    keep = None
    template, template_pad = batch.template, batch.template_pad
    if config.samples.template_source == 'grounding':
        template, template_pad, keep = _grounded_templates(batch, ground.box_cxcywh,
                                                           model_config, config.samples.pad)
    template = model.encode_image(template)
    search = tokens[b:].unflatten(0, (k, b))
    temporal = ground.temporal
    boxes = []
    for i in range(k):
        out = model.track(text, template, search[i], temporal,
                          template_pad_mask=template_pad,
                          search_pad_mask=batch.search_pad[i])
        temporal = out.temporal
        boxes.append(out.box_cxcywh)
    total, stats = joint_loss(ground.box_cxcywh, batch.ground_box, boxes,
                              list(batch.search_box), config.giou_weight, config.l1_weight,
                              keep)
    if keep is not None:
        stats['kept'] = keep.mean().item()
    return total, stats


def _grounded_templates(batch: Batch, box_cxcywh: torch.Tensor, mc, pad_mode: str):
    """Template crops around the grounded boxes (official joint training).

    Returns images (B, 3, T, T), token pad mask (B, Nt) and keep (B,): 1 where the grounding
    IoU with the truth exceeds 0.5, the samples whose tracking losses count.
    """
    if batch.frames is None:
        raise ConfigError("train: template_source 'grounding' needs samples that keep their "
                          "frame (SampleConfig.template_source: grounding)")
    pred = box_cxcywh.detach().float()
    _, iou = giou_loss(cxcywh_to_xyxy(pred), cxcywh_to_xyxy(batch.ground_box).clamp(0, 1))
    crops = []
    for frame, geom, box in zip(batch.frames, batch.ground_geometry, pred.cpu().numpy()):
        h, w = frame.shape[:2]
        fb = pp.clip_box_xywh(geom.norm_cxcywh_to_frame(box), (w, h), 1.0)
        crops.append(pp.crop_and_resize(frame, fb, mc.template_factor, mc.template_size,
                                        pad_mode))
    dev = batch.ground.device
    images = pp.to_tensor(np.stack([c.image for c in crops]), dev)
    pad = torch.from_numpy(np.stack([c.pad_mask for c in crops])).to(dev)
    return images, pp.mask_to_tokens(pad, mc.stride), (iou > 0.5).float()


def train(config: TrainConfig, data, out_dir: str | pathlib.Path | None = None,
          resume: bool = False, model_config=None, log: Callable[[str], None] = print,
          until: int | None = None) -> TrainResult:
    """Train a model on ``data`` (an indexable of Samples) for ``config.steps`` steps.

    ``model_config`` overrides ``config.preset`` (tests use smaller inputs). With ``resume``,
    weights, optimizer state and step are read from ``out_dir`` and training continues there.
    ``until`` stops (and checkpoints) after that step, for runs sliced into several sessions;
    the schedule is still the one of ``config.steps``.
    """
    from nl_tracker_ros.model import checkpoint as model_ckpt
    from nl_tracker_ros.model.config import get_preset
    from nl_tracker_ros.model.jointnlt import build_model
    from nl_tracker_ros.tracker import resolve_device

    if resume and out_dir is None:
        raise ConfigError('train: resume needs an output directory')
    device = resolve_device(config.device)
    mc = model_config or get_preset(config.preset)
    torch.manual_seed(config.seed)
    model = build_model(mc)
    if config.init_weights and not resume:
        model_ckpt.load_weights(model, config.init_weights, mc)
    if config.threads:
        torch.set_num_threads(config.threads)
    model.to(device).train()
    frozen = freeze_parameters(model, config.freeze, config.unfreeze)
    text_cache = None
    if not any(p.requires_grad for p in model.text.parameters()):
        model.text.eval()          # cached states must not depend on dropout
        text_cache = TextCache()
    if frozen:
        log(f'frozen: {frozen / 1e6:.2f}M parameters; training '
            f'{sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6:.2f}M'
            + ('; language encoder cached' if text_cache is not None else ''))
    model.set_precision(config.precision)
    # fp16 gradients underflow without loss scaling; bf16 has fp32's range.
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == 'fp16')
    optimizer = build_optimizer(model, config.lr, config.backbone_lr, config.weight_decay)
    scheduler = build_scheduler(optimizer, config.steps, config.lr_drop_at,
                                config.lr_drop_factor, config.warmup_steps)
    start = 0
    if resume:
        start, _ = load_checkpoint(out_dir, model, optimizer, mc)
        scheduler.last_epoch = start   # the restored optimizer already carries the lr
        log(f'resumed from {out_dir} at step {start}')
    tokenizer = TextTokenizer(max_len=mc.max_text_len)
    b = config.batch_size
    end = config.steps if until is None else max(start, min(until, config.steps))
    loader = DataLoader(_Indices(data, start * b, (end - start) * b),
                        batch_size=b, shuffle=False, num_workers=config.workers,
                        collate_fn=list, drop_last=True,
                        generator=torch.Generator().manual_seed(config.seed))  # not global RNG
    params = [p for p in model.parameters() if p.requires_grad]
    losses: list[float] = []
    stats: dict[str, float] = {}
    weights = None
    t0 = time.perf_counter()
    step = start
    for samples in loader:
        batch = collate(samples, tokenizer, mc.stride, device)
        loss, stats = step_loss(model, batch, config, mc, text_cache)
        if not math.isfinite(loss.item()):
            raise TrackerError(f'training: loss is {loss.item()} at step {step + 1}; '
                               f'lower the learning rate or check the data')
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if config.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        step += 1
        losses.append(stats['loss'])
        if out_dir is not None:
            _append_curve(pathlib.Path(out_dir), step, stats)
        if step % config.log_every == 0 or step == end:
            log(_progress(step, config.steps, start, stats, optimizer, t0))
        out_of_time = (config.max_minutes > 0
                       and time.perf_counter() - t0 > 60.0 * config.max_minutes)
        if out_dir is not None and (step % config.save_every == 0 or step == end
                                    or out_of_time):
            weights = save_checkpoint(out_dir, model, optimizer, step, to_dict(config), mc)
        if out_of_time:
            log(f'stopped at step {step}: the {config.max_minutes:g} min budget is spent')
            break
    return TrainResult(step, losses, stats, weights)


def _append_curve(out: pathlib.Path, step: int, stats: dict) -> None:
    """One CSV row per step (step, loss, grounding IoU, mean tracking IoU, wall time)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / 'curve.csv'
    track = [v for k, v in stats.items() if k.startswith('t') and k.endswith('_iou')]
    row = (f'{step},{stats["loss"]:.5f},{stats.get("g_iou", float("nan")):.4f},'
           f'{sum(track) / max(1, len(track)):.4f},{time.time():.1f}\n')
    with open(path, 'a') as f:
        if f.tell() == 0:
            f.write('step,loss,g_iou,t_iou,time\n')
        f.write(row)


def _progress(step, steps, start, stats, optimizer, t0) -> str:
    per = (time.perf_counter() - t0) / max(1, step - start)
    eta = per * (steps - step)
    track = [v for k, v in stats.items() if k.startswith('t') and k.endswith('_iou')]
    t_iou = sum(track) / len(track) if track else float('nan')
    lr = optimizer.param_groups[0]['lr']
    return (f'step {step}/{steps}  loss {stats["loss"]:.4f}  grounding IoU '
            f'{stats["g_iou"]:.3f}  tracking IoU {t_iou:.3f}  lr {lr:.1e}  '
            f'{per * 1000:.0f} ms/step  eta {eta / 60:.1f} min')

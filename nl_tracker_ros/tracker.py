"""ROS-free tracker API over the joint grounding-and-tracking model.

``Tracker.set_command(text, stamp, box_xywh=None)`` starts a track (language features are
computed here, once per command); ``Tracker.update(image, stamp)`` processes one RGB frame.
Each frame the tracker asks its policy (``recovery.policy.Policy``) which model step the frame
needs, runs it, and hands the output back for the decision:

- after a command: the description is grounded on the whole frame (long edge resized to
  ``grounding_size``) until a match is accepted; its box becomes the template, encoded once
  (or the box given with the command does, on the command's first frame);
- while the target is held: a square search crop around the last box goes through the model
  with the cached text and template features and the temporal clue of the previous frame;
- with the lost/re-found handling on, weak frames lead to LOST and whole-frame searches until
  the target is found again; off, the first grounding is held and never lost.

The policy's state machine owns the state, the track ids and the events; the tracker owns the
model and its cached features. One thread at a time: the node calls it from its worker only.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Literal

import numpy as np
import torch

from nl_tracker_ros import preprocessing as pp
from nl_tracker_ros.boxes import validate_box_xywh
from nl_tracker_ros.config import check_ranges, param
from nl_tracker_ros.errors import ConfigError, InputError
from nl_tracker_ros.model.jointnlt import head_confidence
from nl_tracker_ros.recovery.policy import Policy
from nl_tracker_ros.state_machine import Mode
from nl_tracker_ros.text import TextTokenizer
from nl_tracker_ros.threads import apply_threads
from nl_tracker_ros.track_types import Step, TrackEvent, TrackResult, TrackState

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]
# Stages of timing_ms that are model steps (the rest: text, recovery, total).
_MODEL_STAGES = ('preprocess', 'encode_image', 'ground', 'track', 'postprocess', 'template')
MIN_BOX_PX = 10.0   # smallest box side kept after clipping (the official code's margin)
PAD = 'zero'        # fill outside the frame, as the official code and the training crops


@dataclasses.dataclass(frozen=True)
class TrackerConfig:
    """Tracker settings (ROS parameters ``tracker.*``); crop sizes come from the model preset."""

    preset: str = param('jointnlt-compact', 'model preset: jointnlt-compact (embedded), '
                                            'jointnlt-base (the paper model) or jointnlt-tiny')
    weights: str = param('', "model weights: safetensors or the official JointNLT checkpoint; "
                             "'' = the weights shipped for the preset")
    device: str = param('auto', 'auto (cuda if available, else cpu), cpu, cuda or cuda:N')
    precision: Literal['fp32', 'fp16', 'bf16'] = param(
        'fp32', 'autocast precision of the model steps (fp16 on CUDA, bf16 on CPU or CUDA)')
    threads: int = param(0, 'CPU threads for torch and OpenCV; 0 = automatic (1 for the '
                            'compact model or on a GPU, up to 4 cores for the base model)',
                         (0, 256))
    random_weights: bool = param(False, 'tests only: run a preset that has no weights on '
                                        'random ones')
    backend: Literal['torch', 'onnxruntime'] = param(
        'torch', 'what runs the model: torch, or onnxruntime on exported ONNX graphs (execution '
                 'provider TensorRT, CUDA or CPU, the first one installed; see tracker.device)')
    onnx_dir: str = param('', "onnxruntime backend: a folder written by nl-tracker export; '' "
                              "= export on first use into ~/.cache/nl_tracker_ros")
    # exact: bounded-memory crops with an exact box inverse; official: the official code's
    # crop pixels and box mapping, for parity checks against it (not a ROS parameter)
    geometry: Literal['exact', 'official'] = 'exact'

    def __post_init__(self):
        if not self.preset:
            raise ConfigError('tracker.preset: expected a preset name, got an empty string')
        check_ranges(self, 'tracker')
        for name, allowed in (('precision', ('fp32', 'fp16', 'bf16')),
                              ('geometry', ('exact', 'official')),
                              ('backend', ('torch', 'onnxruntime'))):
            if getattr(self, name) not in allowed:
                raise ConfigError(f'tracker.{name}: expected one of {list(allowed)}, got '
                                  f'{getattr(self, name)!r}')


class Tracker:
    """Language-specified tracker: one command at a time, one frame per ``update``."""

    def __init__(self, model, model_config, config: TrackerConfig, device: torch.device,
                 tokenizer: TextTokenizer, policy: Policy | None = None):
        """Wrap a built model; use :func:`build_tracker` rather than calling this directly."""
        self.model = model.eval()
        self.model_config = model_config
        self.config = config
        self.device = device
        self.tokenizer = tokenizer
        self.policy = policy if policy is not None else Policy()
        self.threads = torch.get_num_threads()   # CPU threads in use (build_tracker sets them)
        self._sampler = 'official' if config.geometry == 'official' else 'warp'
        self._clear()

    # -- state (the policy's) -----------------------------------------------------------------

    @property
    def state(self) -> TrackState:
        """Where the track is."""
        return self.policy.state

    @property
    def track_id(self) -> int:
        """The current track's id (ids keep increasing across commands)."""
        return self.policy.track_id

    @property
    def text(self) -> str:
        """The command being followed ('' when idle)."""
        return self.policy.text

    def _clear(self):
        self.text_features = None       # TextFeatures of the command
        self.template_tokens = None     # (1, Nt, D)
        self.template_pad_mask = None   # (1, Nt) bool
        self._temporal = None           # (1, 1, D) clue for the next local step
        self._box_to_check: Box | None = None   # a given box not yet checked against a frame
        self._timing: dict[str, float] = {}     # stage times for the next TrackResult

    def reset(self, stamp: float = 0.0, why: str = 'reset') -> tuple[TrackEvent, ...]:
        """Drop the current track and go IDLE (track ids keep increasing); returns STOPPED."""
        self._clear()
        return self.policy.command('', stamp, stopped=why)

    # -- commands ---------------------------------------------------------------------------

    def set_command(self, text: str, stamp: float, box_xywh=None,
                    image_size: tuple[int, int] | None = None) -> tuple[TrackEvent, ...]:
        """Start tracking ``text`` (optionally from an initial box); '' or blank = stop.

        Returns the events: COMMAND_ACCEPTED (with a note when the text was truncated), or
        COMMAND_REJECTED with the reason (the current track, if any, goes on), or STOPPED.
        ``image_size`` (width, height) lets an init box be checked against the frame now;
        otherwise it is checked on the next frame.
        """
        if isinstance(text, str) and not text.strip():
            return self.reset(stamp, 'empty command')
        try:
            tokens = self.tokenizer(text)
            box = None
            if box_xywh is not None:
                box = validate_box_xywh(box_xywh, image_size, name='init box')
        except InputError as exc:
            return (self.policy.rejected(stamp, str(exc)),)
        t0 = time.perf_counter()
        features = self._encode(tokens)
        self._clear()
        self.text_features = features
        self._box_to_check = box
        self._timing = {'text': _ms(t0, self.device)}
        note = f' (truncated to {self.tokenizer.max_len} tokens)' if tokens.truncated else ''
        events = self.policy.command(text, stamp, box, note)
        self.policy.start(features)
        return events

    def encode_text(self, text: str):
        """The model's TextFeatures of ``text`` (as a command would get), state untouched."""
        return self._encode(self.tokenizer(text))

    def _encode(self, tokens):
        ids = torch.from_numpy(tokens.ids[None]).to(self.device)    # (1, L)
        mask = torch.from_numpy(tokens.mask[None]).to(self.device)  # (1, L)
        with self._inference():
            return self.model.encode_text(ids, mask)

    # -- frames -----------------------------------------------------------------------------

    def update(self, image: np.ndarray, stamp: float) -> TrackResult:
        """Process one RGB uint8 (H, W, 3) frame; return the box, state and events for it."""
        t_start = time.perf_counter()
        image = pp.validate_image(image)
        if self.state == TrackState.IDLE:
            return self._result(stamp, (), t_start)
        if self._box_to_check is not None:
            h, w = image.shape[:2]
            box, self._box_to_check = self._box_to_check, None
            try:
                validate_box_xywh(box, (w, h), name='init box')
            except InputError as exc:
                events = (self.policy.rejected(stamp, str(exc)),)
                self.reset(stamp)
                return self._result(stamp, events, t_start)
        plan = self.policy.plan(stamp)
        step = None
        if plan.mode == Mode.LOCAL:
            step = self.local_step(image, plan.centre)
        elif plan.mode == Mode.GLOBAL:
            step = self.global_step(image)
        t0 = time.perf_counter()
        evidence = self.policy.evidence(plan, step, image)
        d = self.policy.decide(plan, evidence, stamp)
        self._timing['recovery'] = _ms(t0, self.device)
        if d.template_box_xywh is not None:
            self.set_template(image, d.template_box_xywh)
            self.policy.template_changed(self.template_tokens)
        if d.follow or d.template_box_xywh is not None:
            self._temporal = step.head.temporal if step is not None else None
        return self._result(stamp, d.events, t_start, d.box_xywh, d.score, d.candidate_xywh,
                            d.candidate_score)

    def _result(self, stamp, events, t_start, box=None, score=0.0, candidate=None,
                candidate_score=0.0) -> TrackResult:
        timing, self._timing = self._timing, {}
        timing['total'] = _ms(t_start, self.device)
        return TrackResult(stamp, self.track_id, self.text, self.state, _as_box(box),
                           float(score), tuple(events), timing, _as_box(candidate),
                           float(candidate_score))

    # -- model steps (also used to collect features for fitting) ----------------------------

    def global_step(self, image: np.ndarray) -> Step:
        """Ground the command on the whole frame; returns the box in frame pixels."""
        mc = self.model_config
        t = time.perf_counter()
        crop = pp.grounding_resize(image, mc.grounding_size, PAD)
        x = pp.to_tensor(crop.image, self.device)                           # (1, 3, S, S)
        pad = torch.from_numpy(crop.pad_mask[None]).to(self.device)
        t = self._tick('preprocess', t)
        with self._inference():
            tokens = self.model.encode_image(x)                              # (1, N, D)
            t = self._tick('encode_image', t)
            head = self.model.ground(self.text_features, tokens,
                                     pp.mask_to_tokens(pad, mc.stride))
            t = self._tick('ground', t)
        box_norm = self._box(head, 'global')
        h, w = image.shape[:2]
        if self.config.geometry == 'official':
            # Official: no margin clip after grounding; the box is already inside the frame.
            x, y, bw, bh = pp.official_grounding_to_frame(box_norm, crop.geometry, (w, h))
            step = Step('global', (x, y, max(bw, 1.0), max(bh, 1.0)), head_confidence(head),
                        head, crop.geometry)
        else:
            step = self._step('global', head, crop.geometry.norm_cxcywh_to_frame(box_norm),
                              (w, h), crop.geometry)
        self._tick('postprocess', t)
        return step

    def local_step(self, image: np.ndarray, search_box_xywh: Box) -> Step:
        """Track in the search crop around ``search_box_xywh`` with the cached template."""
        if self.template_tokens is None:
            raise InputError('local step: no template yet; ground or give a box first')
        mc = self.model_config
        t = time.perf_counter()
        crop = pp.crop_and_resize(image, search_box_xywh, mc.search_factor, mc.search_size,
                                  PAD, self._sampler)
        x = pp.to_tensor(crop.image, self.device)                           # (1, 3, S, S)
        pad = torch.from_numpy(crop.pad_mask[None]).to(self.device)
        t = self._tick('preprocess', t)
        with self._inference():
            tokens = self.model.encode_image(x)                              # (1, Ns, D)
            t = self._tick('encode_image', t)
            head = self.model.track(self.text_features, self.template_tokens, tokens,
                                    self._temporal, template_pad_mask=self.template_pad_mask,
                                    search_pad_mask=pp.mask_to_tokens(pad, mc.stride))
            t = self._tick('track', t)
        h, w = image.shape[:2]
        raw = crop.geometry.norm_cxcywh_to_frame(self._box(head, 'local'))
        step = self._step('local', head, raw, (w, h), crop.geometry)
        self._tick('postprocess', t)
        return step

    def set_template(self, image: np.ndarray, box_xywh: Box) -> None:
        """Encode the template crop around ``box_xywh`` (once per template)."""
        mc = self.model_config
        t0 = time.perf_counter()
        crop = pp.crop_and_resize(image, box_xywh, mc.template_factor, mc.template_size,
                                  PAD, self._sampler)
        x = pp.to_tensor(crop.image, self.device)
        with self._inference():
            self.template_tokens = self.model.encode_image(x)               # (1, Nt, D)
        pad = torch.from_numpy(crop.pad_mask[None]).to(self.device)
        self.template_pad_mask = pp.mask_to_tokens(pad, mc.stride)
        self._tick('template', t0)

    @staticmethod
    def _box(head, kind: str) -> np.ndarray:
        box = head.box_cxcywh[0].float().cpu().numpy()   # normalised cxcywh of the input
        if not np.isfinite(box).all():
            raise InputError(f'{kind} step: the model returned a non-finite box {box}')
        return box

    def _step(self, kind, head, raw: np.ndarray, size: tuple[int, int], geometry) -> Step:
        """Clip the frame box ``raw`` to the frame of ``size`` (w, h) and wrap it in a Step."""
        box = pp.clip_box_xywh(raw, size, MIN_BOX_PX)
        if max(abs(a - b) for a, b in zip(box, raw)) > 0.5:
            log.debug('%s box %s clipped to the %dx%d frame: %s', kind, raw.round(1), *size,
                      box)
        return Step(kind, box, head_confidence(head), head, geometry)

    def _tick(self, key: str, t0: float) -> float:
        """Add the time since ``t0`` to stage ``key``; return now."""
        ms = _ms(t0, self.device)
        self._timing[key] = self._timing.get(key, 0.0) + ms
        return t0 + ms / 1000.0

    @staticmethod
    def _inference():
        return torch.inference_mode()


def _as_box(box) -> Box | None:
    return None if box is None else tuple(float(v) for v in box)


def _ms(t0: float, device: torch.device) -> float:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)  # stage times must include the queued kernels
    return (time.perf_counter() - t0) * 1000.0


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if available else cpu; anything else must be a valid torch device."""
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f'device: expected cpu, cuda, cuda:N or auto, got {name!r}') from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ConfigError(f'device {name}: CUDA is not available on this machine')
    return device


def build_tracker(config: TrackerConfig = TrackerConfig(), device: str | None = None,
                  recovery=None) -> Tracker:
    """Build the model of ``config.preset``, load its weights and wrap it in a Tracker.

    ``device`` overrides ``config.device``; ``recovery`` (a ``RecoveryConfig``) sets the
    lost/re-found handling, off when None; its switch and kind classifier must have been fitted
    for these weights (``recovery.policy.build_policy``). Empty ``config.weights`` loads the
    weights shipped for the preset (``jointnlt-compact``); a preset without them raises
    ConfigError, unless ``config.random_weights`` (tests and benchmarks) allows random ones.
    """
    from nl_tracker_ros.model import checkpoint
    from nl_tracker_ros.model.config import get_preset
    from nl_tracker_ros.model.identity import model_identity
    from nl_tracker_ros.model.jointnlt import build_model
    from nl_tracker_ros.recovery.config import RecoveryConfig
    from nl_tracker_ros.recovery.policy import build_policy

    onnx = config.backend == 'onnxruntime'
    # onnxruntime places the graphs itself (tracker.device picks its execution providers); the
    # crops, the policy and the tensors between graphs stay on the CPU
    dev = torch.device('cpu') if onnx else resolve_device(device or config.device)
    model_config = get_preset(config.preset)
    weights = config.weights or checkpoint.shipped_weights(config.preset)
    if not weights and not config.random_weights:
        raise ConfigError(missing_weights_message(config.preset))
    if onnx:
        from nl_tracker_ros.model.onnx_backend import build_onnx_model, provider_device_type
        threads = apply_threads(config.threads, config.preset,
                                provider_device_type(device or config.device))
    else:
        apply_threads(config.threads, config.preset, dev.type)
    recovery = recovery or RecoveryConfig(enabled=False)
    identity = model_identity(config.preset, config.weights, config.random_weights) \
        if recovery.enabled else None
    policy = build_policy(recovery, identity, model_config.dim, dev)
    if onnx:
        model = build_onnx_model(config, model_config, weights, device or config.device,
                                 threads)
        return Tracker(model, model_config, config, dev,
                       TextTokenizer(max_len=model_config.max_text_len), policy)
    model = build_model(model_config)
    if weights:
        fmt = checkpoint.load_weights(model, weights, model_config)
        log.info('tracker: loaded %s weights from %s', fmt, weights)
    else:
        log.warning('tracker: preset %s runs on random weights (tracker.random_weights: for '
                    'tests only)', config.preset)
    model.to(dev).eval()
    model.set_precision(config.precision)
    tokenizer = TextTokenizer(max_len=model_config.max_text_len)
    return Tracker(model, model_config, config, dev, tokenizer, policy)


def missing_weights_message(preset: str) -> str:
    """The one line that refuses ``preset`` when it has no weights to load."""
    hint = ' (the official JointNLT checkpoint, e.g. JointNLT_ep0300.pth.tar)' \
        if preset == 'jointnlt-base' else ''
    return (f'tracker.preset {preset}: no weights ship with this preset; set tracker.weights '
            f'(--weights) to a checkpoint{hint}; random weights are for tests only '
            f'(tracker.random_weights: true)')

"""ROS-free tracker API over the joint grounding-and-tracking model.

``Tracker.set_command(text, stamp, box_xywh=None)`` starts a track (language features are
computed here, once per command); ``Tracker.update(image, stamp)`` processes one RGB frame:

- first frame after a command: GROUNDING. The model grounds the description on the whole frame
  (long edge resized to ``grounding_size``); the grounded box (or the given init box) becomes the
  template, encoded once, and the track goes to TRACKING with an ACQUIRED event;
- later frames: TRACKING. A square search crop around the last box goes through the model with
  the cached text and template features and the temporal clue of the previous frame.

Without a recovery object the tracker is the plain joint model: it never reports LOST. With one
(``build_tracker(..., recovery=obj)``), ``obj`` decides every frame; see :class:`Recovery`.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any, Literal, Protocol

import numpy as np
import torch

from nl_tracker_ros import preprocessing as pp
from nl_tracker_ros.boxes import validate_box_xywh
from nl_tracker_ros.errors import ConfigError, InputError
from nl_tracker_ros.model.jointnlt import head_confidence
from nl_tracker_ros.text import TextTokenizer
from nl_tracker_ros.threads import apply_threads
from nl_tracker_ros.track_types import EventKind, TrackEvent, TrackResult, TrackState

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]
# Stages of timing_ms that are model steps (the rest: text, recovery, total).
_MODEL_STAGES = ('preprocess', 'encode_image', 'ground', 'track', 'postprocess', 'template')


@dataclasses.dataclass(frozen=True)
class TrackerConfig:
    """Tracker settings; crop sizes and factors come from the model preset."""

    preset: str = 'jointnlt-compact'  # model preset (nl_tracker_ros.model.config.get_preset)
    # safetensors or official checkpoint; '' = the weights shipped for the preset
    # (nl_tracker_ros/weights/<preset>.safetensors); a preset without them is refused
    weights: str = ''
    # tests and benchmarks only: run a preset that has no weights on random ones
    random_weights: bool = False
    device: str = 'auto'              # 'auto' = cuda if available, else cpu
    # CPU threads for torch and OpenCV; 0 = automatic (nl_tracker_ros.threads: 1 for the
    # compact model or on a GPU, up to 4 cores for the base model)
    threads: int = 0
    precision: Literal['fp32', 'fp16', 'bf16'] = 'fp32'  # autocast inside the model steps
    compile: bool = False             # torch.compile the per-frame model parts
    vocab_path: str = ''              # WordPiece vocabulary; '' = the bundled uncased one
    pad: Literal['zero', 'mean'] = 'zero'   # fill outside the frame (official: zero)
    # exact: bounded-memory crops with an exact box inverse; official: the official code's
    # crop pixels and box mapping, for parity checks against it
    geometry: Literal['exact', 'official'] = 'exact'
    min_box_px: float = 10.0          # smallest box side kept after clipping (official margin)

    def __post_init__(self):
        if not self.preset:
            raise ConfigError('tracker.preset: expected a preset name, got an empty string')
        if self.threads < 0:
            raise ConfigError(f'tracker.threads: expected 0 (automatic) or more, '
                              f'got {self.threads}')
        if self.min_box_px < 1:
            raise ConfigError(f'tracker.min_box_px: expected >= 1, got {self.min_box_px}')
        for name, allowed in (('precision', ('fp32', 'fp16', 'bf16')), ('pad', ('zero', 'mean')),
                              ('geometry', ('exact', 'official'))):
            if getattr(self, name) not in allowed:
                raise ConfigError(f'tracker.{name}: expected one of {list(allowed)}, got '
                                  f'{getattr(self, name)!r}')


@dataclasses.dataclass(frozen=True, eq=False)
class Step:
    """One model step on one frame: box in frame pixels plus what the model produced."""

    kind: Literal['local', 'global']
    box_xywh: Box                  # clipped to the frame
    score: float                   # heatmap confidence, 0..1 (sqrt of the two corner peaks)
    head: Any                      # the model's HeadOutput
    geometry: pp.CropGeometry      # crop (or grounding image) the head output refers to


@dataclasses.dataclass(frozen=True)
class Decision:
    """What a recovery object decided for one frame."""

    state: TrackState
    box_xywh: Box | None              # box to report; None while lost
    score: float
    events: tuple[TrackEvent, ...] = ()
    search_box_xywh: Box | None = None    # new search centre; None keeps the last one
    template_box_xywh: Box | None = None  # re-encode the template from this box of this frame
    clue: str = 'local'    # which of this frame's steps gives the next local step its temporal
    #                        clue when the search centre or template moves ('local'/'global')
    candidate_xywh: Box | None = None     # not held: the frame's best match, unconfirmed
    candidate_score: float = 0.0


class Recovery(Protocol):
    """Seam for lost/re-found handling, consulted once per frame while a command is active.

    ``begin`` is called when a command is accepted (``text`` non-empty) or stopped (``''``).
    ``step`` gets the frame and the tracker (for ``local_step``, ``global_step``,
    ``text_features``, ``template_tokens``, ``search_box_xywh``, ``state``) and runs whatever
    model steps it needs; the tracker then applies the Decision: the reported box and state,
    the search centre (kept while lost), and a new template when asked for. Events of the command
    itself (COMMAND_ACCEPTED / REJECTED / STOPPED) stay with the tracker.
    """

    def begin(self, track_id: int, text: str, stamp: float, box_xywh: Box | None) -> None:
        """Start (or stop, for empty ``text``) a track."""

    def step(self, tracker: 'Tracker', image: np.ndarray, stamp: float) -> Decision:
        """Decide the state and box for this frame."""


class Tracker:
    """Language-specified tracker: one command at a time, one frame per ``update``."""

    def __init__(self, model, model_config, config: TrackerConfig, device: torch.device,
                 tokenizer: TextTokenizer, recovery: Recovery | None = None):
        """Wrap a built model; use :func:`build_tracker` rather than calling this directly."""
        self.model = model.eval()
        self.model_config = model_config
        self.config = config
        self.device = device
        self.tokenizer = tokenizer
        self.recovery = recovery
        self.threads = torch.get_num_threads()   # CPU threads in use (build_tracker sets them)
        self._next_id = 1
        self.track_id = 0
        self._sampler = 'official' if config.geometry == 'official' else 'warp'
        # Commands may come from another thread than frames (ROS callbacks): one at a time.
        self._lock = threading.RLock()
        self._clear()

    # -- state ------------------------------------------------------------------------------

    def _clear(self):
        self.state = TrackState.IDLE
        self.text = ''
        self.text_features = None       # TextFeatures of the command
        self.template_tokens = None     # (1, Nt, D)
        self.template_pad_mask = None   # (1, Nt) bool
        self.search_box_xywh: Box | None = None
        self._temporal = None           # (1, 1, D) clue for the next local step
        self._init_box: Box | None = None
        self._timing: dict[str, float] = {}   # stage times for the next TrackResult
        self._steps: dict[str, Step] = {}      # model steps run on the current frame

    def reset(self) -> None:
        """Forget the command and go IDLE (track ids keep increasing)."""
        with self._lock:
            if self.recovery is not None and self.state != TrackState.IDLE:
                self.recovery.begin(self.track_id, '', 0.0, None)
            self._clear()

    # -- commands ---------------------------------------------------------------------------

    def set_command(self, text: str, stamp: float, box_xywh=None,
                    image_size: tuple[int, int] | None = None) -> tuple[TrackEvent, ...]:
        """Start tracking ``text`` (optionally with an initial box); '' or blank = stop.

        Returns the events: COMMAND_ACCEPTED (with a note when the text was truncated), or
        COMMAND_REJECTED with the reason (the current track, if any, goes on), or STOPPED.
        ``image_size`` (width, height) lets an init box be checked against the frame now;
        otherwise it is checked on the next frame.
        """
        with self._lock:
            return self._set_command(text, stamp, box_xywh, image_size)

    def encode_text(self, text: str):
        """The model's TextFeatures of ``text`` (as a command would get), state untouched."""
        return self._encode(self.tokenizer(text))

    def _encode(self, tokens):
        ids = torch.from_numpy(tokens.ids[None]).to(self.device)    # (1, L)
        mask = torch.from_numpy(tokens.mask[None]).to(self.device)  # (1, L)
        with self._inference():
            return self.model.encode_text(ids, mask)

    def _set_command(self, text, stamp, box_xywh, image_size) -> tuple[TrackEvent, ...]:
        if isinstance(text, str) and not text.strip():
            reason = ('empty command: tracking stopped' if self.state != TrackState.IDLE
                      else 'empty command: nothing was being tracked')
            events = (TrackEvent(EventKind.STOPPED, stamp, self.track_id, reason,
                                 self.search_box_xywh),)
            self.reset()
            return events
        try:
            tokens = self.tokenizer(text)
            box = None
            if box_xywh is not None:
                box = validate_box_xywh(box_xywh, image_size, name='init box')
        except InputError as exc:
            return (TrackEvent(EventKind.COMMAND_REJECTED, stamp, self.track_id, str(exc)),)
        t0 = time.perf_counter()
        features = self._encode(tokens)
        if self.recovery is not None and self.state != TrackState.IDLE:
            self.recovery.begin(self.track_id, '', stamp, None)
        self._clear()
        self.track_id = self._next_id
        self._next_id += 1
        self.text = text.strip()
        self.text_features = features
        self._init_box = box
        self.state = TrackState.GROUNDING
        self._timing = {'text': _ms(t0, self.device)}
        note = f' (truncated to {self.tokenizer.max_len} tokens)' if tokens.truncated else ''
        reason = f'tracking "{self.text}"' + note + (' from the given box' if box else '')
        if self.recovery is not None:
            self.recovery.begin(self.track_id, self.text, stamp, box)
        return (TrackEvent(EventKind.COMMAND_ACCEPTED, stamp, self.track_id, reason, box),)

    # -- frames -----------------------------------------------------------------------------

    def update(self, image: np.ndarray, stamp: float) -> TrackResult:
        """Process one RGB uint8 (H, W, 3) frame; return the box, state and events for it."""
        with self._lock:
            return self._update(image, stamp)

    def _update(self, image: np.ndarray, stamp: float) -> TrackResult:
        t_start = time.perf_counter()
        image = pp.validate_image(image)
        events: list[TrackEvent] = []
        self._steps = {}
        if self.state == TrackState.IDLE:
            return self._result(stamp, None, 0.0, events, t_start)
        h, w = image.shape[:2]
        if self._init_box is not None:
            try:
                validate_box_xywh(self._init_box, (w, h), name='init box')
            except InputError as exc:
                events.append(TrackEvent(EventKind.COMMAND_REJECTED, stamp, self.track_id,
                                         str(exc)))
                if self.recovery is not None:
                    self.recovery.begin(self.track_id, '', stamp, None)
                self._clear()
                return self._result(stamp, None, 0.0, events, t_start)
        if self.recovery is not None:
            d = self._recovery_frame(image, stamp, events)
            return self._result(stamp, d.box_xywh, d.score, events, t_start,
                                d.candidate_xywh, d.candidate_score)
        box, score = self._plain_frame(image, stamp, events)
        return self._result(stamp, box, score, events, t_start)

    def _result(self, stamp, box, score, events, t_start, candidate=None,
                candidate_score=0.0) -> TrackResult:
        timing, self._timing = self._timing, {}
        timing['total'] = _ms(t_start, self.device)
        return TrackResult(stamp, self.track_id, self.text, self.state, _as_box(box), score,
                           tuple(events), timing, _as_box(candidate), float(candidate_score))

    def _plain_frame(self, image, stamp, events) -> tuple[Box | None, float]:
        if self.state == TrackState.GROUNDING:
            if self._init_box is not None:
                box, score, reason = self._init_box, 1.0, 'box given with the command'
                self._init_box = None
            else:
                step = self.global_step(image)
                box, score, reason = step.box_xywh, step.score, 'grounded the description'
                self._temporal = step.head.temporal
            self.set_template(image, box)
            self.search_box_xywh = box
            self.state = TrackState.TRACKING
            events.append(TrackEvent(EventKind.ACQUIRED, stamp, self.track_id, reason, box,
                                     score))
            return box, score
        step = self.local_step(image, self.search_box_xywh)
        self.search_box_xywh = step.box_xywh
        self._temporal = step.head.temporal
        return step.box_xywh, step.score

    def _recovery_frame(self, image, stamp, events) -> Decision:
        if self._init_box is not None:
            # The given box is the template; the recovery object already knows it from begin().
            self.set_template(image, self._init_box)
            self.search_box_xywh = self._init_box
            self._init_box = None
        t0 = time.perf_counter()
        before = sum(self._timing.get(k, 0.0) for k in _MODEL_STAGES)
        d = self.recovery.step(self, image, stamp)
        inside = sum(self._timing.get(k, 0.0) for k in _MODEL_STAGES) - before
        self._timing['recovery'] = _ms(t0, self.device) - inside  # its own cost only
        events.extend(d.events)
        if d.template_box_xywh is not None:
            self.set_template(image, d.template_box_xywh)
        if d.search_box_xywh is not None:
            self.search_box_xywh = tuple(float(v) for v in d.search_box_xywh)
        if d.template_box_xywh is not None or d.search_box_xywh is not None:
            step = self._steps.get(d.clue)
            self._temporal = step.head.temporal if step is not None else None
        self.state = d.state
        return d

    # -- model steps (also used by recovery objects) -----------------------------------------

    def global_step(self, image: np.ndarray) -> Step:
        """Ground the command on the whole frame; returns the box in frame pixels."""
        mc = self.model_config
        t = time.perf_counter()
        crop = pp.grounding_resize(image, mc.grounding_size, self.config.pad)
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
        self._steps['global'] = step
        self._tick('postprocess', t)
        return step

    def local_step(self, image: np.ndarray, search_box_xywh: Box) -> Step:
        """Track in the search crop around ``search_box_xywh`` with the cached template."""
        if self.template_tokens is None:
            raise InputError('local step: no template yet; ground or give a box first')
        mc = self.model_config
        t = time.perf_counter()
        crop = pp.crop_and_resize(image, search_box_xywh, mc.search_factor, mc.search_size,
                                  self.config.pad, self._sampler)
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
        self._steps['local'] = step
        self._tick('postprocess', t)
        return step

    def set_template(self, image: np.ndarray, box_xywh: Box) -> None:
        """Encode the template crop around ``box_xywh`` (once per template)."""
        mc = self.model_config
        t0 = time.perf_counter()
        crop = pp.crop_and_resize(image, box_xywh, mc.template_factor, mc.template_size,
                                  self.config.pad, self._sampler)
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
        box = pp.clip_box_xywh(raw, size, self.config.min_box_px)
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


def build_tracker(config: TrackerConfig, device: str | None = None,
                  recovery: Recovery | None = None) -> Tracker:
    """Build the model of ``config.preset``, load its weights and wrap it in a Tracker.

    ``device`` overrides ``config.device``. Empty ``config.weights`` loads the weights shipped
    for the preset (``jointnlt-compact``); a preset without them raises ConfigError, unless
    ``config.random_weights`` (tests and benchmarks) allows random ones.
    """
    from nl_tracker_ros.model import checkpoint
    from nl_tracker_ros.model.config import get_preset
    from nl_tracker_ros.model.jointnlt import build_model

    dev = resolve_device(device or config.device)
    model_config = get_preset(config.preset)
    weights = config.weights or checkpoint.shipped_weights(config.preset)
    if not weights and not config.random_weights:
        raise ConfigError(missing_weights_message(config.preset))
    apply_threads(config.threads, config.preset, dev.type)
    model = build_model(model_config)
    if weights:
        fmt = checkpoint.load_weights(model, weights, model_config)
        log.info('tracker: loaded %s weights from %s', fmt, weights)
    else:
        log.warning('tracker: preset %s runs on random weights (tracker.random_weights: for '
                    'tests only)', config.preset)
    model.to(dev).eval()
    model.set_precision(config.precision)
    if config.compile:
        model.compile_steps()
    vocab = config.vocab_path or getattr(model_config, 'vocab_path', '') or None
    tokenizer = TextTokenizer(vocab, max_len=model_config.max_text_len)
    return Tracker(model, model_config, config, dev, tokenizer, recovery)


def missing_weights_message(preset: str) -> str:
    """The one line that refuses ``preset`` when it has no weights to load."""
    hint = ' (the official JointNLT checkpoint, e.g. JointNLT_ep0300.pth.tar)' \
        if preset == 'jointnlt-base' else ''
    return (f'tracker.preset {preset}: no weights ship with this preset; set tracker.weights '
            f'(--weights) to a checkpoint{hint}; random weights are for tests only '
            f'(tracker.random_weights: true)')

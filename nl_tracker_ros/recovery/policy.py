"""``RecoveryPolicy``: the state machine + ``Recovery``, shaped as the Tracker's recovery seam.

It implements the ``begin`` / ``step`` protocol of ``nl_tracker_ros.tracker.Recovery``::

    policy = build_policy(recovery_config, model_config.dim, model_config.dim, device)
    tracker = build_tracker(tracker_config, device, recovery=policy)

Per frame it asks the state machine which model step to run (``tracker.local_step`` around the
last confident box, ``tracker.global_step`` on the whole frame, or none), turns the HeadOutput
into evidence with ``Recovery``, advances the state machine, and returns a ``Decision``: the
box is reported only while the target is held (otherwise the frame's best match goes out as an
unconfirmed candidate), the search centre moves only on confident frames (and follows a match on
trial), and the template is encoded from the first whole-frame match of a track when its trial
begins (on ACQUIRED without a trial; on REFOUND too with ``search.retemplate``).

``search.colour_share`` checks the pixels of a match that is not held yet (a whole-frame match,
or one on trial) when the command names exactly one colour (``colours.named_colour``): with less
than that share of its box in the colour (``colours.colour_share``) it scores 0, so a look-alike
of another colour is never acquired. The learned switch tells colours apart too coarsely for
that (a cyan ring scored up to 0.53 for "the white ring", a purple cross 0.46 for "the pink
circle"). The check counts its rejections and names them in the NOT_FOUND reason.

``search.kind_threshold`` checks the same matches when the command names exactly one kind the
kind classifier knows (``recovery.kinds``, which reads the box's own pixels): below that
probability of the named kind the match scores 0, so a look-alike of another kind ("the star" on
a cross, where no colour word can tell) is not acquired either. Its rejections are counted and
named the same way.

Three options add to the plan, as in AdaRS where the switch chooses between the local and the
global result every frame; all are off by default (measured on the 30 calibration scenes):

- ``search.jump``: a weak tracking frame also searches the whole frame, and a match there that
  clears ``accept_threshold`` and beats the local score by ``search.jump_margin`` takes over at
  once (no LOST). Fewer false LOST events and fewer wrong boxes for descriptions that match
  nothing, but a look-alike then often takes over when the target leaves, so LOST recall
  drops (38 % against 57 %, at accept 0.55);
- ``search.local``: while lost or searching, the local tracker also watches the last held box and
  the better of its score and the whole-frame match is the evidence. It scored the same here
  (AUC 26.2 against 25.9) and doubles the cost of searching frames, which a realtime replay
  through the node could not afford (20.7 frames answered per second instead of 28.4);
- ``search.verify_iou``: the weak tracking frame that would declare LOST first grounds the
  description on the whole frame; a grounding box on the local box keeps the track. Fewer false
  LOST events and higher AUC, but a lower absent-frame F1 (figures in the README).
"""
from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch

from nl_tracker_ros import state_machine as sm
from nl_tracker_ros.boxes import iou_xywh
from nl_tracker_ros.colours import colour_share, named_colour
from nl_tracker_ros.recovery.config import RecoveryConfig, SearchConfig
from nl_tracker_ros.recovery.kinds import KindCheck, load_classifier
from nl_tracker_ros.recovery.switch import Recovery, Region, build_recovery
from nl_tracker_ros.track_types import HOLDING_STATES, EventKind, TrackState

log = logging.getLogger(__name__)


class RecoveryPolicy:
    """Lost/re-found handling for one Tracker: ``begin`` per command, ``step`` per frame."""

    def __init__(self, recovery: Recovery, config: sm.StateMachineConfig,
                 search: SearchConfig = SearchConfig(), kinds: KindCheck | None = None):
        self.recovery = recovery
        self.kinds = kinds if search.kind_threshold else None
        self.config = config
        self.search = search
        self.state = TrackState.IDLE
        self.counters = sm.Counters()
        self._pending: tuple = ()      # ACQUIRED of a command with a box, sent with its frame
        self._started = False          # description handed to Recovery
        self._new_template = False     # template re-encoded: refresh the selector's guide
        self.colour = None             # the one colour the command names, if any
        self.colour_rejections = 0     # matches of this track scored 0 by search.colour_share
        self.kind = None               # the one kind the command names that kinds knows
        self.kind_rejections = 0       # matches of this track scored 0 by search.kind_threshold

    def begin(self, track_id: int, text: str, stamp: float, box_xywh=None) -> None:
        """Start a track (``text`` non-empty) or stop (``''``); command events stay with the
        Tracker."""
        prev = dataclasses.replace(self.counters, track_id=track_id - 1)
        if not text.strip():
            prev = dataclasses.replace(self.counters, track_id=track_id)
        self.state, self.counters, events = sm.command(self.state, prev, text, stamp, box_xywh)
        self._pending = tuple(e for e in events if e.kind == EventKind.ACQUIRED)
        self._started = False
        self._new_template = False
        self.colour = named_colour(text)
        self.colour_rejections = 0
        self.kind = self.kinds.named(text) if self.kinds is not None else None
        self.kind_rejections = 0
        self.recovery.reset()

    def step(self, tracker, image: np.ndarray, stamp: float):
        """Run this frame's model step and decide state, box and search centre."""
        from nl_tracker_ros.tracker import Decision   # the Tracker owns its Decision type
        if not self._started:
            self.recovery.start(tracker.text_features, tracker.template_tokens)
            self._started = True
        elif self._new_template:
            self.recovery.set_template(tracker.template_tokens)
        self._new_template = False
        h, w = image.shape[:2]
        c = self.counters
        mode = sm.plan(self.state, c, stamp, self.config)
        result, mode = self._run(tracker, image, mode, c)
        evidence = sm.Evidence(ran=False) if result is None else result.evidence()
        if evidence.box_xywh is not None:
            evidence = dataclasses.replace(evidence, box_xywh=_clip(evidence.box_xywh, w, h))
        if mode == sm.Mode.LOCAL and self._agrees_globally(tracker, image, evidence, c):
            evidence = dataclasses.replace(evidence, confirmed=True)
        if self._lacks_colour(image, evidence, mode):
            evidence = dataclasses.replace(evidence, score=0.0)
            self.colour_rejections += 1
        elif self._lacks_kind(image, evidence, mode):
            evidence = dataclasses.replace(evidence, score=0.0)
            self.kind_rejections += 1
        prev = self.state
        self.state, self.counters, events = sm.step(prev, c, evidence, stamp, self.config)
        if self.colour_rejections or self.kind_rejections:
            events = tuple(self._with_rejections(e) for e in events)
        events = tuple(dataclasses.replace(e, stamp=stamp) for e in self._pending) + events
        self._pending = ()
        box, score = sm.reported(self.state, evidence)
        # not held: the frame's best match is still reported, as a candidate nobody should follow
        candidate = evidence.box_xywh if box is None else None
        template = self._template(c, mode, events)
        self._new_template = template is not None
        # weak or lost frames move nothing: no new search centre, no temporal clue from them;
        # a match on trial is followed like a held target
        sure = (self.state in HOLDING_STATES and self.counters.weak == 0) or self.counters.trial
        clue = 'global' if mode == sm.Mode.GLOBAL else 'local'
        return Decision(self.state, box, score, events,
                        sm.centre(self.counters) if sure else None, template, clue,
                        candidate, float(evidence.score) if candidate is not None else 0.0)

    def _template(self, before: sm.Counters, mode: sm.Mode, events) -> sm.Box | None:
        """The box to encode the template from on this frame, if any.

        The first match of a track is encoded when its trial begins (it is tracked on trial
        with it), or when it is found without a trial; a re-found target keeps the first
        template unless ``search.retemplate``.
        """
        now = self.counters
        if now.trial and not before.trial:
            return None if before.acquired else now.candidate
        kinds = (EventKind.ACQUIRED, EventKind.REFOUND) if self.search.retemplate \
            else (EventKind.ACQUIRED,)
        if not any(e.kind in kinds for e in events):
            return None
        if before.trial:     # found by tracking: only a re-found target is re-encoded here
            return now.box_xywh if before.acquired else None
        return now.box_xywh if mode == sm.Mode.GLOBAL else None

    def _not_held(self, evidence: sm.Evidence, mode: sm.Mode) -> bool:
        """Whether the frame's match is one not held yet: a whole-frame match, or one on
        trial (what the colour and kind checks look at)."""
        return evidence.box_xywh is not None \
            and not (self.state in HOLDING_STATES and mode != sm.Mode.GLOBAL)

    def _lacks_colour(self, image, evidence: sm.Evidence, mode: sm.Mode) -> bool:
        """``search.colour_share``: whether a match not held yet misses the colour the
        command names."""
        share = self.search.colour_share
        if not share or self.colour is None or not self._not_held(evidence, mode):
            return False
        return colour_share(image, evidence.box_xywh, self.colour) < share

    def _lacks_kind(self, image, evidence: sm.Evidence, mode: sm.Mode) -> bool:
        """``search.kind_threshold``: whether a match not held yet is unlikely to show the
        kind the command names."""
        if self.kind is None or not self._not_held(evidence, mode):
            return False
        return self.kinds.probability(image, evidence.box_xywh, self.kind) < \
            self.search.kind_threshold

    def _with_rejections(self, event):
        if event.kind != EventKind.NOT_FOUND:
            return event
        parts = [event.reason]
        if self.colour_rejections:
            parts.append(f'{self.colour_rejections} matches lacked the colour {self.colour}')
        if self.kind_rejections:
            article = 'an' if self.kind[0] in 'aeiou' else 'a'
            parts.append(f'{self.kind_rejections} matches did not look like {article} '
                         f'{self.kind}')
        return dataclasses.replace(event, reason='; '.join(parts))

    def _agrees_globally(self, tracker, image, evidence: sm.Evidence, c: sm.Counters) -> bool:
        """``search.verify_iou``: on the weak tracking frame that would declare LOST, whether
        the whole-frame grounding box overlaps the local box enough to keep the track."""
        cfg = self.config
        if not self.search.verify_iou or self.state not in HOLDING_STATES \
                or evidence.box_xywh is None \
                or evidence.score >= cfg.keep_threshold or c.weak + 1 < cfg.lost_after_frames:
            return False
        s = tracker.global_step(image)
        return float(iou_xywh(s.box_xywh, evidence.box_xywh)) >= self.search.verify_iou

    def _run(self, tracker, image, mode: sm.Mode, c: sm.Counters):
        """Run the planned model steps; return the winning result and the mode it came from.

        With ``search.jump`` a weak tracking frame also searches the whole frame, and a clearly
        better match there moves the track; with ``search.local`` the local tracker keeps
        watching the last held box while searching (see the module docstring).
        """
        h, w = image.shape[:2]
        local = global_ = None
        if mode == sm.Mode.LOCAL:
            s = tracker.local_step(image, sm.centre(c) or tracker.search_box_xywh)
            local = self.recovery.local(s.head, Region.from_geometry(s.geometry))
        weak = (local is not None and local.score < self.config.keep_threshold
                and self.search.jump and self.state in HOLDING_STATES)
        if mode == sm.Mode.GLOBAL or weak:
            s = tracker.global_step(image)
            size = c.box_xywh[2:] if c.box_xywh is not None else None
            global_ = self.recovery.search(s.head, Region.from_geometry(s.geometry),
                                           s.box_xywh, (w, h), size)
        if mode == sm.Mode.GLOBAL and c.acquired and c.box_xywh is not None \
                and self.search.local:
            # an occluded target mostly comes back where it was last held
            s = tracker.local_step(image, c.box_xywh)
            local = self.recovery.local(s.head, Region.from_geometry(s.geometry))
        if local is None:
            return global_, mode
        if global_ is None:
            return local, sm.Mode.LOCAL
        if mode == sm.Mode.GLOBAL:
            return (global_, mode) if global_.score > local.score else (local, sm.Mode.LOCAL)
        # a jump is a re-find without LOST: it needs the re-find threshold too
        if global_.score >= max(self.config.accept_threshold,
                                local.score + self.search.jump_margin):
            return global_, sm.Mode.GLOBAL
        return local, sm.Mode.LOCAL


def _clip(box, width: int, height: int, min_size: float = 1.0):
    x, y, w, h = (float(v) for v in box)
    x1, y1 = min(max(0.0, x), width - min_size), min(max(0.0, y), height - min_size)
    x2, y2 = min(max(x1 + min_size, x + w), width), min(max(y1 + min_size, y + h), height)
    return (x1, y1, x2 - x1, y2 - y1)


def build_policy(config: RecoveryConfig, feat_dim: int, text_dim: int,
                 device: str | torch.device = 'cpu', random_init: bool = False
                 ) -> RecoveryPolicy | None:
    """The Tracker's recovery object, or None when ``config.enabled`` is false (plain tracker)."""
    if not config.enabled:
        return None
    rec = build_recovery(config, feat_dim, text_dim, device, random_init)
    s = config.search
    kinds = None
    path = s.kind_weights or shipped_kinds()
    if s.kind_threshold and path is None:
        log.warning('search.kind_threshold: no kind classifier ships with this install and '
                    'search.kind_weights is empty; the kind check is off')
    elif s.kind_threshold:
        kinds = KindCheck(load_classifier(path), device)
    return RecoveryPolicy(rec, config.states, s, kinds)


def shipped_switch(preset: str):
    """The switch weights shipped for ``preset``'s shipped model weights (None when none).

    They were fitted on that model's features, so they go only with those model weights.
    """
    from nl_tracker_ros.model.checkpoint import shipped_weights
    return shipped_weights(f'{preset}.switch')


def shipped_kinds():
    """The kind classifier shipped with the package (None when none). It reads pixels only,
    so it goes with any model weights."""
    from nl_tracker_ros.model.checkpoint import shipped_weights
    return shipped_weights('kinds')


def build_tracker_with_recovery(tracker_config, recovery_config: RecoveryConfig | None = None,
                                device: str | None = None):
    """The Tracker with its lost/re-found handling, as the node and the commands build it.

    ``device`` overrides ``tracker_config.device`` ('auto' = cuda if available, else cpu).
    Without a RecoveryConfig, or with ``enabled: false``, it is the plain joint model. With no
    ``switch.weights`` and the shipped model weights, the shipped switch weights are used.
    """
    from nl_tracker_ros import tracker as trk
    from nl_tracker_ros.model.config import get_preset

    if recovery_config is None or not recovery_config.enabled:
        return trk.build_tracker(tracker_config, device)
    sw = recovery_config.switch
    if sw.enabled and not sw.weights and not tracker_config.weights:
        path = shipped_switch(tracker_config.preset)
        if path is not None:
            recovery_config = dataclasses.replace(
                recovery_config, switch=dataclasses.replace(sw, weights=str(path)))
    resolved = trk.resolve_device(device or tracker_config.device)
    dim = get_preset(tracker_config.preset).dim
    policy = build_policy(recovery_config, dim, dim, resolved)
    return trk.build_tracker(tracker_config, str(resolved), recovery=policy)

"""The track's policy: which model step a frame needs, what its output says, what follows.

The Tracker drives it once per frame; the policy never calls the Tracker back::

    plan = policy.plan(stamp)                  # no step, a local step around plan.centre, or
                                               # a whole-frame step
    step = tracker.local_step(...) / tracker.global_step(...)    # the step the plan names
    evidence = policy.evidence(plan, step, image)   # scores: switch, colour and kind checks
    decision = policy.decide(plan, evidence, stamp) # state machine: state, events, box, ...

and tells it about the command (``command``, ``start``) and every new template
(``template_changed``). The state machine (``nl_tracker_ros.state_machine``) owns the state,
the track ids and every event; with the lost/re-found handling off the policy runs the same
machine with :data:`~nl_tracker_ros.recovery.config.PLAIN_STATES` and the model's own
confidence as the score, so there is one path either way.

Besides the switch's score, two checks look at the pixels of a match that is not held yet (a
whole-frame match, or one on trial), so that a look-alike is not acquired:

- ``colour_share``: when the command names exactly one colour (``colours.named_colour``), the
  match must show that colour on that share of its box (``colours.colour_share``), else it
  scores 0;
- ``kind_threshold``: when the command names exactly one kind that the kind classifier knows
  (``recovery.kinds``), the match must show that kind with that probability, else it scores 0.

Each check counts its rejections and names them in the NOT_FOUND reason. Held targets are never
checked, so a shadow or a change of light cannot make the tracker drop its target.

The switch and the kind classifier go with the model weights they were fitted for
(``build_policy``): with none for the weights in use, the switch gives way to the model's own
confidence and the kind check is off, each said once in the log and in ``Policy.notes``.
"""
from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch

from nl_tracker_ros import state_machine as sm
from nl_tracker_ros.colours import colour_share, named_colour
from nl_tracker_ros.model.identity import SHIPPED, ModelIdentity
from nl_tracker_ros.preprocessing import clip_box_xywh
from nl_tracker_ros.recovery.config import PLAIN_STATES, MethodConfig, RecoveryConfig
from nl_tracker_ros.recovery.kinds import KindCheck, classifier_model, load_classifier
from nl_tracker_ros.recovery.switch import Recovery, build_recovery, fit_hint, load_recovery
from nl_tracker_ros.track_types import HOLDING_STATES, EventKind, Step, TrackEvent, TrackState

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]


@dataclasses.dataclass(frozen=True)
class Plan:
    """The model step a frame needs: ``mode`` (state_machine.Mode) around ``centre``."""

    mode: sm.Mode
    centre: Box | None = None   # LOCAL: the box the search crop is cut around
    given: Box | None = None    # the first frame of a command with a box: that box, no step


@dataclasses.dataclass(frozen=True)
class Decision:
    """What the policy decided for one frame."""

    state: TrackState
    box_xywh: Box | None              # box to report; None while not held
    score: float
    events: tuple[TrackEvent, ...] = ()
    template_box_xywh: Box | None = None  # encode the template from this box of this frame
    follow: bool = False        # the frame's step gives the next local step its temporal clue
    candidate_xywh: Box | None = None     # not held: the frame's best match, unconfirmed
    candidate_score: float = 0.0


class Policy:
    """Lost/re-found handling for one Tracker: ``command`` per command, the rest per frame."""

    def __init__(self, states: sm.StateMachineConfig = PLAIN_STATES,
                 scorer: Recovery | None = None, colour: float = 0.0,
                 kinds: KindCheck | None = None, kind_threshold: float = 0.0):
        self.states = states
        self.scorer = scorer                    # None: the model's own confidence is the score
        self.colour_threshold = colour
        self.kinds = kinds if kind_threshold else None
        self.kind_threshold = kind_threshold
        self.state = TrackState.IDLE
        self.counters = sm.Counters()
        self._given: Box | None = None     # the command's box, until its first frame
        self._pending: tuple = ()          # its ACQUIRED event, sent with that frame
        self.colour = None                 # the one colour the command names, if any
        self.kind = None                   # the one kind it names that the classifier knows
        self.rejections = {'colour': 0, 'kind': 0}
        self.notes: tuple[str, ...] = ()   # what of the handling is off for this model, and why

    # -- the command ------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """The command being followed ('' when idle)."""
        return self.counters.text

    @property
    def track_id(self) -> int:
        """The current track's id (the last one after a stop)."""
        return self.counters.track_id

    def command(self, text: str, stamp: float, box_xywh: Box | None = None, note: str = '',
                stopped: str = 'empty command') -> tuple[TrackEvent, ...]:
        """Start a track for ``text`` (optionally from a given box), or stop for blank text;
        returns COMMAND_ACCEPTED or STOPPED (a given box's ACQUIRED comes with its frame)."""
        self.state, self.counters, events = sm.command(self.state, self.counters, text, stamp,
                                                       box_xywh, note, stopped)
        self._pending = tuple(e for e in events if e.kind == EventKind.ACQUIRED)
        self._given = None if box_xywh is None else tuple(float(v) for v in box_xywh)
        self.colour = named_colour(text) if self.colour_threshold else None
        self.kind = self.kinds.named(text) if self.kinds is not None else None
        self.rejections = {'colour': 0, 'kind': 0}
        if self.scorer is not None:
            self.scorer.reset()
        return tuple(e for e in events if e.kind != EventKind.ACQUIRED)

    def rejected(self, stamp: float, reason: str) -> TrackEvent:
        """COMMAND_REJECTED for a refused command or box; the current track goes on."""
        return sm.rejected(self.counters, stamp, reason)

    def start(self, text_features) -> None:
        """The command's text features, for the switch (call after ``command``)."""
        if self.scorer is not None:
            self.scorer.start(text_features)

    def template_changed(self, template_tokens) -> None:
        """A new template was encoded; the selector's guide follows it."""
        if self.scorer is not None:
            self.scorer.set_template(template_tokens)

    # -- per frame --------------------------------------------------------------------------

    def plan(self, stamp: float) -> Plan:
        """The model step the frame with ``stamp`` needs."""
        if self._given is not None:
            return Plan(sm.Mode.NONE, given=self._given)
        mode = sm.plan(self.state, self.counters, stamp, self.states)
        return Plan(mode, sm.centre(self.counters) if mode == sm.Mode.LOCAL else None)

    def evidence(self, plan: Plan, step: Step | None, image: np.ndarray) -> sm.Evidence:
        """What the frame's step says about the target: its box and a 0..1 score."""
        if plan.given is not None:
            return sm.Evidence(1.0, plan.given)
        if step is None:
            return sm.Evidence(ran=False)
        if self.scorer is None:
            evidence = sm.Evidence(step.score, step.box_xywh)
        else:
            h, w = image.shape[:2]
            if plan.mode == sm.Mode.GLOBAL:
                last = self.counters.box_xywh
                res = self.scorer.search(step.head, step.geometry, step.box_xywh, (w, h),
                                         last[2:] if last is not None else None)
            else:
                res = self.scorer.local(step.head, step.geometry, step.box_xywh)
            evidence = sm.Evidence(res.score, clip_box_xywh(res.box_xywh, (w, h)))
        return self._checked(plan, evidence, image)

    def decide(self, plan: Plan, evidence: sm.Evidence, stamp: float) -> Decision:
        """Advance the state machine with the frame's evidence and say what follows."""
        before = self.counters
        self.state, self.counters, events = sm.step(self.state, before, evidence, stamp,
                                                    self.states)
        if self.rejections['colour'] or self.rejections['kind']:
            events = tuple(self._with_rejections(e) for e in events)
        events = tuple(dataclasses.replace(e, stamp=stamp) for e in self._pending) + events
        self._pending = ()
        box, score = sm.reported(self.state, evidence)
        # not held: the frame's best match is still reported, as a candidate nobody should follow
        candidate = evidence.box_xywh if box is None else None
        if plan.given is not None:
            template, self._given = plan.given, None
        else:
            template = self._template(before, plan.mode, events)
        # weak or lost frames move nothing: no new search centre, no temporal clue from them;
        # a match on trial is followed like a held target
        follow = (self.state in HOLDING_STATES and self.counters.weak == 0) \
            or bool(self.counters.trial)
        return Decision(self.state, box, score, events, template, follow, candidate,
                        float(evidence.score) if candidate is not None else 0.0)

    # -- helpers ----------------------------------------------------------------------------

    def _template(self, before: sm.Counters, mode: sm.Mode, events) -> Box | None:
        """The box to encode the template from on this frame, if any: the first match of a
        track, when its trial begins or when it is found without a trial. A re-found target
        keeps the first template, as JointNLT never updates it (a loose or wrong re-find then
        cannot spoil later frames)."""
        now = self.counters
        if now.trial and not before.trial:
            return None if before.acquired else now.candidate
        if before.acquired or before.trial or mode != sm.Mode.GLOBAL:
            return None
        return now.box_xywh if any(e.kind == EventKind.ACQUIRED for e in events) else None

    def _checked(self, plan: Plan, evidence: sm.Evidence, image: np.ndarray) -> sm.Evidence:
        """Score 0 for a match not held yet that lacks the named colour or kind."""
        not_held = evidence.box_xywh is not None \
            and not (self.state in HOLDING_STATES and plan.mode != sm.Mode.GLOBAL)
        if not not_held:
            return evidence
        if self.colour is not None and \
                colour_share(image, evidence.box_xywh, self.colour) < self.colour_threshold:
            self.rejections['colour'] += 1
        elif self.kind is not None and self.kinds.probability(
                image, evidence.box_xywh, self.kind) < self.kind_threshold:
            self.rejections['kind'] += 1
        else:
            return evidence
        return dataclasses.replace(evidence, score=0.0)

    def _with_rejections(self, event: TrackEvent) -> TrackEvent:
        if event.kind != EventKind.NOT_FOUND:
            return event
        parts = [event.reason]
        if self.rejections['colour']:
            parts.append(f"{self.rejections['colour']} matches lacked the colour {self.colour}")
        if self.rejections['kind']:
            article = 'an' if self.kind[0] in 'aeiou' else 'a'
            parts.append(f"{self.rejections['kind']} matches did not look like {article} "
                         f'{self.kind}')
        return dataclasses.replace(event, reason='; '.join(parts))


def build_policy(config: RecoveryConfig, model: ModelIdentity | None, dim: int,
                 device: str | torch.device = 'cpu') -> Policy:
    """The policy for the model ``model`` (preset and weights) with ``dim`` channels: the plain
    one when ``config.enabled`` is false (``model`` may then be None).

    The switch: ``config.switch_weights``, else the one shipped for the shipped weights; it is
    built from its file's metadata and refused (CheckpointError, one line naming both models)
    when it was fitted on other weights. With none, the confidence-only mode (see
    :func:`recovery_notes`). The kind check: ``config.kind_weights``, else the shipped
    classifier, but only where it belongs to the model in use; otherwise off. What is off and
    why is logged once and kept in ``Policy.notes``.
    """
    if not config.enabled:
        return Policy()
    path = config.switch_weights or (shipped_switch(model.preset) if model.weights == SHIPPED
                                     else None)
    if path:
        scorer = load_recovery(path, model, dim, device)
    else:
        scorer = build_recovery(MethodConfig(), dim, dim, device)
    kinds = None
    kind_path = config.kind_weights or shipped_kinds()
    if config.kind_threshold and kind_path is not None:
        fitted = classifier_model(kind_path)
        if config.kind_weights:
            model.require(fitted, kind_path, 'kind classifier', _kinds_hint(model))
        if fitted == model:
            kinds = KindCheck(load_classifier(kind_path), device)
    policy = Policy(config.states, scorer, config.colour_share, kinds, config.kind_threshold)
    policy.notes = recovery_notes(config, model, path, kinds is not None)
    for note in policy.notes:
        log.warning(note)
    return policy


def recovery_notes(config: RecoveryConfig, model: ModelIdentity, switch_path, kinds_on: bool
                   ) -> tuple[str, ...]:
    """One line for each part of the lost/re-found handling that is off for ``model``.

    Without a switch the handling runs in the confidence-only mode: the model's own heatmap
    confidence scores local and whole-frame matches against the same thresholds, and the
    whole-frame search takes the grounding box alone (no retrieval score, no window selector).
    """
    notes = []
    if not switch_path:
        notes.append(f'recovery: no retrieval switch fitted for {model.describe()} '
                     f'(recovery.switch_weights is empty); lost/re-found runs on the model\'s '
                     f'own confidence, with no whole-frame retrieval score; {fit_hint(model)}')
    if config.kind_threshold and not kinds_on:
        notes.append(f'recovery: the kind check is off: no kind classifier fitted for '
                     f'{model.describe()} (recovery.kind_weights is empty); '
                     f'{_kinds_hint(model)}')
    return tuple(notes)


def _kinds_hint(model: ModelIdentity) -> str:
    return f'fit one with: {model.fit_command("train-kinds")}'


def shipped_switch(preset: str):
    """The switch weights shipped for ``preset``'s shipped model weights (None when none)."""
    from nl_tracker_ros.model.checkpoint import shipped_weights
    return shipped_weights(f'{preset}.switch')


def shipped_kinds():
    """The kind classifier shipped with the package (None when none); its metadata says which
    model it goes with (the shipped embedded one)."""
    from nl_tracker_ros.model.checkpoint import shipped_weights
    return shipped_weights('kinds')

"""``Recovery``: turns the joint model's outputs into evidence for the state machine.

The policy (``recovery.policy``) calls it with what the Tracker's model steps produced::

    rec = load_recovery(path, model_identity, feat_dim=model_config.dim)   # fitted
    rec.start(text_features, template_tokens)         # once per command
    rec.set_template(template_tokens)                 # after every new template
    res = rec.local(step.head, step.geometry, step.box_xywh)                 # a local step
    res = rec.search(step.head, step.geometry, step.box_xywh, (W, H),
                     target_size=last_box[2:])                               # a whole-frame step

``head`` is the HeadOutput of ``model.track`` (local) or ``model.ground`` on the whole frame
(global); ``geometry`` (``preprocessing.CropGeometry``) maps the model input to the frame, and
``box_xywh`` is the step's own box in frame pixels. All boxes in and out are frame pixels, xywh.

Scores: each candidate's score is ``max(0, AdaRS cosine)`` of its region against the
description; locally the best-scoring proposal gives the score, and the model's own box is the
box. The global search weighs the model's grounding box against the selector's windows (see
``Recovery.search``). Without switch weights (the confidence-only mode, for models no switch
was fitted for) the score is the heatmap confidence alone and the global search uses the
grounding box only: an untrained switch or selector would score and pick at random.

A switch file (``save_recovery``) records in its metadata the sizes it was fitted with, the
model it was fitted on (``model.identity``) and its data; ``load_recovery`` builds the modules
from that and refuses a file fitted on other model weights.
"""
from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import torch
from torch import nn

from nl_tracker_ros.config import from_dict, to_dict
from nl_tracker_ros.errors import CheckpointError, ConfigError, InputError
from nl_tracker_ros.model.identity import ModelIdentity
from nl_tracker_ros.model.jointnlt import head_confidence
from nl_tracker_ros.model.weights_io import (json_entry, load_strict, read_metadata,
                                             read_tensors, write_safetensors)
from nl_tracker_ros.recovery.adars import AdaptiveRetrievalSwitch
from nl_tracker_ros.recovery.config import MethodConfig
from nl_tracker_ros.recovery.proposals import Proposals, corner_proposals
from nl_tracker_ros.recovery.tsr import GuidedSelector, TargetSpecificRetrieval
from nl_tracker_ros.state_machine import Evidence

Box = tuple[float, float, float, float]


@dataclasses.dataclass(frozen=True)
class LocalResult:
    """Evidence from the local tracker's proposals on one frame."""

    box_xywh: tuple[float, float, float, float] | None
    score: float                 # 0..1, what the state machine thresholds
    similarity: float            # AdaRS cosine of the chosen proposal (nan without a switch)
    heatmap_conf: float          # corner-heatmap confidence of the chosen proposal
    proposals_xywh: np.ndarray   # (k, 4) valid proposals, ranked by heatmap score
    similarities: np.ndarray     # (k,) AdaRS cosine per proposal (nan without a switch)

    def evidence(self) -> Evidence:
        """Evidence for ``state_machine.step``."""
        return Evidence(self.score, self.box_xywh)


@dataclasses.dataclass(frozen=True)
class GlobalResult:
    """Evidence from one whole-frame search."""

    box_xywh: tuple[float, float, float, float] | None
    score: float
    similarity: float
    heatmap_conf: float
    source: str                  # 'grounding' (the model's proposals) or 'windows' (TSR)
    windows_xywh: np.ndarray     # (k, 4) the selector's top windows ((0, 4) if not run)

    def evidence(self) -> Evidence:
        """Evidence for ``state_machine.step``."""
        return Evidence(self.score, self.box_xywh)


class Recovery:
    """Proposals + switch + retrieval for one tracker; see the module docstring for the calls."""

    def __init__(self, method: MethodConfig = MethodConfig(),
                 switch: AdaptiveRetrievalSwitch | None = None,
                 retrieval: TargetSpecificRetrieval | None = None,
                 device: str | torch.device = 'cpu'):
        self.method = method
        self.device = torch.device(device)
        self.switch = switch.to(self.device).eval() if switch is not None else None
        self.retrieval = retrieval.to(self.device).eval() if retrieval is not None else None
        self._text_emb = None      # (1, dim) description embedding of the switch
        self._text = None          # (tokens, pad) kept for the selector's guide
        self._guide = None         # (1, dim) selector guide vector

    @property
    def uses_switch(self) -> bool:
        """True when AdaRS scores the proposals (fitted weights loaded)."""
        return self.switch is not None

    def reset(self) -> None:
        """Forget the description and template (tracker reset or empty command)."""
        self._text_emb = self._text = self._guide = None

    @torch.inference_mode()
    def start(self, text, template_tokens: torch.Tensor | None = None) -> None:
        """Cache the description (``TextFeatures``: tokens (1, L, D), pad_mask (1, L))."""
        tokens = text.tokens[:1].to(self.device).float()    # the model may run in fp16
        pad = text.pad_mask[:1].to(self.device).bool() if text.pad_mask is not None else None
        self._text = (tokens, pad)
        if self.switch is not None:
            self._text_emb = self.switch.embed_text(tokens, pad)[0]
        self.set_template(template_tokens)

    @torch.inference_mode()
    def set_template(self, template_tokens: torch.Tensor | None) -> None:
        """Refresh the selector's guide after a new template; tokens (1, Nt, D) or None."""
        if self.retrieval is None or self.switch is None or self._text is None:
            return
        t = None if template_tokens is None else template_tokens[:1].to(self.device).float()
        self._guide = self.retrieval.selector.guide_vector(self._text[0], self._text[1], t)

    def _require_text(self):
        if self.switch is not None and self._text_emb is None:
            raise InputError('recovery: no description; call start(text_features) first')

    def _score(self, head, boxes: torch.Tensor, conf: torch.Tensor, valid: torch.Tensor):
        """Similarities and scores of candidate boxes (1, K, 4): the AdaRS cosine clamped to
        0..1 with a switch, the heatmap confidence ``conf`` without one."""
        if self.switch is None:
            sims = torch.full_like(conf, float('nan'))
            score = conf
        else:
            sims, _ = self.switch(head.features[:1].to(self.device).float(), boxes,
                                  self._text_emb)
            score = sims.clamp(0, 1)
        return sims, score.masked_fill(~valid, -1.0)

    def _proposals(self, head) -> Proposals:
        c = self.method.proposals
        return corner_proposals(head.heatmap_tl[:1].to(self.device),
                                head.heatmap_br[:1].to(self.device), c.top_k, c.peaks,
                                c.peak_window, c.min_peak_mass, c.pair_consistency, c.nms_iou,
                                c.min_size)

    @torch.inference_mode()
    def local(self, head, geometry, box_xywh: Box) -> LocalResult:
        """Score the local tracker's top-k proposals; ``head`` is ``model.track``'s HeadOutput,
        ``geometry`` its search crop and ``box_xywh`` the model's own box in the frame, which
        is the box reported (the soft-argmax box is the finer estimate)."""
        self._require_text()
        own = tuple(float(v) for v in box_xywh)
        props = self._proposals(head)
        sims, score = self._score(head, props.boxes_cxcywh, props.scores, props.valid)
        valid = props.valid[0].cpu().numpy()
        if not valid.any():
            return LocalResult(own, 0.0, float('nan'), 0.0, np.zeros((0, 4)), np.zeros(0))
        boxes = geometry.norm_cxcywh_to_frame(props.boxes_cxcywh[0].cpu().numpy())
        sims_np = sims[0].cpu().numpy()
        i = int(score[0].argmax())
        return LocalResult(own, float(score[0, i]), float(sims_np[i]),
                           float(props.scores[0, i]), boxes[valid], sims_np[valid])

    @torch.inference_mode()
    def search(self, head, geometry, box_xywh: Box, frame_size: tuple[int, int],
               target_size: tuple[float, float] | None = None) -> GlobalResult:
        """Whole-frame search; ``head`` is ``model.ground``'s HeadOutput on the full frame.

        Candidates: the model's own grounding box ``box_xywh`` in frame pixels, as the tracker
        mapped it, and (with a fitted switch) the mean of the selector's top windows, which
        replaces it only when it scores ``window_margin`` higher. ``target_size`` (w, h) in
        pixels adds windows at the last known size. The grounding heatmaps' corner proposals
        are not candidates: on the whole frame their corner pairs rarely make the target's box
        (right on 12% of the calibration scenes' visible frames, against 45% for the model's
        own box).
        """
        self._require_text()
        own_xywh = tuple(float(v) for v in box_xywh)
        own = torch.as_tensor(geometry.frame_to_norm_cxcywh(np.array([own_xywh])),
                              dtype=torch.float32, device=self.device)[None]    # (1, 1, 4)
        conf = torch.tensor([[head_confidence(head)]], device=self.device)
        windows = np.zeros((0, 4))
        boxes = own
        if self.retrieval is not None and self._guide is not None:
            feats = head.features[:1].to(self.device).float()
            mean, windows, probs = self.retrieval.search(
                feats, self._guide, frame_size, geometry.frame_region, target_size)
            extra = torch.as_tensor(geometry.frame_to_norm_cxcywh(mean[None]), dtype=own.dtype)
            boxes = torch.cat([own, extra.to(self.device)[None]], 1)
            conf = torch.cat([conf, conf.new_tensor([[float(probs.mean())]])], 1)
        valid = torch.ones(conf.shape, dtype=torch.bool, device=self.device)
        sims, score = self._score(head, boxes, conf, valid)
        i = 0
        if boxes.shape[1] > 1 and float(score[0, 1]) > float(score[0, 0]) + \
                self.method.search.window_margin:
            i = 1
        box = own_xywh if i == 0 else tuple(float(v) for v in geometry.norm_cxcywh_to_frame(
            boxes[0, i].cpu().numpy()))
        return GlobalResult(box, float(score[0, i]), float(sims[0, i]), float(conf[0, i]),
                            ('grounding', 'windows')[i], windows)


def build_modules(method: MethodConfig, feat_dim: int, text_dim: int
                  ) -> tuple[AdaptiveRetrievalSwitch, TargetSpecificRetrieval]:
    """Randomly initialised switch and retrieval modules of the method's sizes."""
    s, r = method.switch, method.search
    switch = AdaptiveRetrievalSwitch(feat_dim, text_dim, s.dim, s.roi_size, s.fg_classifiers,
                                     s.parts, s.local_prototypes, s.heads, s.gpo_dim)
    selector = GuidedSelector(feat_dim, text_dim, r.dim, r.heads, r.layers, r.roi_size)
    retrieval = TargetSpecificRetrieval(selector, r.window_scales, r.target_scales, r.aspects,
                                        r.stride, r.max_windows, r.top_k, r.agree_iou)
    return switch, retrieval


def build_recovery(method: MethodConfig, feat_dim: int, text_dim: int,
                   device: str | torch.device = 'cpu', random_init: bool = False) -> Recovery:
    """A Recovery without fitted weights: the model's own confidence scores every candidate
    (the confidence-only mode), unless ``random_init`` (tests and benchmarks) asks for random
    switch and selector modules of ``method``'s sizes. Fitted ones: :func:`load_recovery`."""
    if not random_init:
        return Recovery(method, None, None, device)
    return Recovery(method, *build_modules(method, feat_dim, text_dim), device)


FORMAT = 'nl_tracker_ros.recovery'
WHAT = 'recovery switch'


def fit_hint(model: ModelIdentity) -> str:
    """How to fit a switch for ``model`` (the end of the messages about missing ones)."""
    return f'fit one with: {model.fit_command("train-recovery")}'


def _container(switch: nn.Module, retrieval: nn.Module) -> nn.Module:
    box = nn.Module()
    box.switch = switch
    box.selector = retrieval.selector
    return box


def save_recovery(path: str | pathlib.Path, switch: AdaptiveRetrievalSwitch,
                  retrieval: TargetSpecificRetrieval, method: MethodConfig, feat_dim: int,
                  text_dim: int, model: ModelIdentity, data: dict, fit: dict | None = None
                  ) -> None:
    """Write the switch and selector weights (safetensors) with what they fit in the metadata:
    ``method`` (the sizes and search settings they were fitted with), the model's widths, the
    model they were fitted on (``model``), the ``data`` they came from and the ``fit``
    settings."""
    meta = {'format': FORMAT, 'method': to_dict(method), 'feat_dim': feat_dim,
            'text_dim': text_dim, **model.metadata(), 'data': data}
    if fit is not None:
        meta['fit'] = fit
    write_safetensors(path, _container(switch, retrieval).state_dict(), meta)


def recovery_metadata(path: str | pathlib.Path) -> tuple[dict[str, str], ModelIdentity]:
    """The metadata of a switch file and the model it was fitted for."""
    meta = read_metadata(path, WHAT)
    if meta.get('format') != FORMAT:
        raise CheckpointError(f'{WHAT} {path}: expected a file written by nl-tracker '
                              f'train-recovery (metadata format {FORMAT!r}, got '
                              f'{meta.get("format")!r})')
    return meta, ModelIdentity.from_metadata(meta, path, WHAT)


def load_recovery(path: str | pathlib.Path, model: ModelIdentity, feat_dim: int,
                  device: str | torch.device = 'cpu') -> Recovery:
    """The Recovery of a file written by :func:`save_recovery`, built from its metadata.

    Refused (CheckpointError, one line) when it was fitted for another model than ``model``,
    for other widths than ``feat_dim``, or when its tensors do not fit the sizes it records.
    """
    meta, fitted = recovery_metadata(path)
    model.require(fitted, path, WHAT, fit_hint(model))
    try:
        method = from_dict(MethodConfig, json_entry(meta, 'method', path, WHAT), 'method')
    except ConfigError as exc:
        raise CheckpointError(f'{WHAT} {path}: its metadata records no usable sizes ({exc})') \
            from None
    dims = [json_entry(meta, k, path, WHAT) for k in ('feat_dim', 'text_dim')]
    if dims != [feat_dim, feat_dim]:
        raise CheckpointError(f'{WHAT} {path}: fitted on {dims[0]}-channel features, the model '
                              f'has {feat_dim}')
    switch, retrieval = build_modules(method, *dims)
    load_strict(_container(switch, retrieval), read_tensors(path, WHAT), f'{WHAT} {path}',
                target='the modules of the sizes it records')
    return Recovery(method, switch, retrieval, device)

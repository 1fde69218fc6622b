"""Configuration of the lost/re-found machinery: every threshold and window size in one place.

``config/recovery.yaml`` carries the same defaults with the same one-line explanations; fill with
``nl_tracker_ros.config.from_dict(RecoveryConfig, data)``.
"""
from __future__ import annotations

import dataclasses

from nl_tracker_ros.errors import ConfigError
from nl_tracker_ros.state_machine import StateMachineConfig


@dataclasses.dataclass(frozen=True)
class ProposalConfig:
    """Top-k boxes from the corner heatmaps of the local tracker."""

    top_k: int = 5                  # proposals handed to the switch per frame
    peaks: int = 8                  # local maxima taken from each corner map before pairing
    peak_window: int = 3            # odd cell window for peak NMS, mass and sub-cell refinement
    min_peak_mass: float = 0.02     # corner peaks holding less probability mass are noise
    pair_consistency: float = 1.0   # exponent of the min/max mass ratio penalising mixed pairs
    nms_iou: float = 0.7            # proposals overlapping a better one more than this are dropped
    min_size: float = 0.02          # smallest box side, as a fraction of the crop
    keep_head_iou: float = 0.0      # report the model's box when winner IoU >= this (0: always)

    def __post_init__(self):
        if self.top_k < 1 or self.peaks < 1:
            raise ConfigError('proposals: expected top_k >= 1 and peaks >= 1')
        if self.peak_window < 1 or self.peak_window % 2 == 0:
            raise ConfigError(f'proposals.peak_window: expected an odd number >= 1, '
                              f'got {self.peak_window}')


@dataclasses.dataclass(frozen=True)
class SwitchConfig:
    """Adaptive retrieval switch (AdaRS): matches proposals against the description."""

    enabled: bool = True            # false: score from the heatmap only (no trained switch)
    weights: str = ''               # switch + selector safetensors ('' = shipped, if any)
    dim: int = 256                  # joint embedding width
    roi_size: int = 7               # RoIAlign output cells per side for each proposal
    fg_classifiers: int = 8         # N learnable key-value foreground classifiers (eq. 1-3)
    parts: int = 4                  # A learnable part prototypes (eq. 4-6)
    local_prototypes: int = 4       # L local semantic prototypes (eq. 7-16)
    heads: int = 4                  # attention heads of the part-aware cross-attention
    gpo_dim: int = 32               # GPO positional-encoding and GRU width
    heatmap_weight: float = 0.0     # share of the heatmap confidence in the score (rest: AdaRS)

    def __post_init__(self):
        if not 0.0 <= self.heatmap_weight <= 1.0:
            raise ConfigError(f'switch.heatmap_weight: expected 0..1, got {self.heatmap_weight}')
        if self.dim % self.heads:
            raise ConfigError(f'switch: dim {self.dim} must be divisible by heads {self.heads}')


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Target-specific retrieval (TSR) over the whole frame."""

    window_scales: tuple[float, ...] = (0.15, 0.3, 0.5)  # window side / sqrt(frame area)
    target_scales: tuple[float, ...] = (0.8, 1.0, 1.25)  # window size / last known target size
    aspects: tuple[float, ...] = (0.5, 1.0, 2.0)         # window height / width
    stride: float = 0.5              # window step as a fraction of the window size
    max_windows: int = 1500          # coarser stride beyond this, to bound the cost per search
    top_k: int = 3                   # best windows averaged into the global result
    agree_iou: float = 0.3           # only top windows overlapping the best one this much count
    window_margin: float = 0.1       # the windows replace the grounding box only this much better
    local: bool = False              # also track locally at the last held box while searching
    jump: bool = False               # weak tracking frames also search the whole frame
    jump_margin: float = 0.05        # a match this much better there (and accepted) takes over
    # re-encode the template from each re-found box; false keeps the acquisition's template,
    # as JointNLT never updates it (a loose or wrong re-find then cannot poison later frames)
    retemplate: bool = False
    # > 0: before a weak frame would declare LOST, ground the description on the whole frame
    # once; a grounding box overlapping the local box this much (IoU) keeps the track (0: off)
    verify_iou: float = 0.0
    # > 0: a match not yet held (whole-frame, or on trial) of a command naming one colour must
    # show that colour on this share of its box's pixels, else it scores 0 (0: off)
    colour_share: float = 0.1
    # > 0: a match not yet held of a command naming one kind the classifier knows must show
    # that kind with this probability (recovery.kinds, from the box's pixels), else it
    # scores 0 (0: off)
    kind_threshold: float = 0.2
    kind_weights: str = ''           # KindClassifier safetensors ('' = the shipped one)
    dim: int = 128                   # selector width
    heads: int = 4                   # selector attention heads
    layers: int = 1                  # selector transformer encoder layers
    roi_size: int = 4                # RoIAlign cells per side for each window

    def __post_init__(self):
        if not self.window_scales and not self.target_scales:
            raise ConfigError('search: expected some window_scales or target_scales')
        if not self.aspects or min(self.aspects) <= 0:
            raise ConfigError('search.aspects: expected positive height/width ratios')
        if not 0.05 <= self.stride <= 1.0:
            raise ConfigError(f'search.stride: expected 0.05..1, got {self.stride}')
        if not -1.0 <= self.window_margin <= 1.0:
            raise ConfigError(f'search.window_margin: expected -1..1 (a score difference), '
                              f'got {self.window_margin}')
        if not 0.0 <= self.verify_iou <= 1.0:
            raise ConfigError(f'search.verify_iou: expected 0..1 (0: off), got {self.verify_iou}')
        if not 0.0 <= self.colour_share <= 1.0:
            raise ConfigError(f'search.colour_share: expected 0..1 (0: off), '
                              f'got {self.colour_share}')
        if not 0.0 <= self.kind_threshold < 1.0:
            raise ConfigError(f'search.kind_threshold: expected 0..1 (0: off), '
                              f'got {self.kind_threshold}')
        if self.dim % self.heads:
            raise ConfigError(f'search: dim {self.dim} must be divisible by heads {self.heads}')


@dataclasses.dataclass(frozen=True)
class RecoveryConfig:
    """Everything of the lost/re-found handling; ``enabled: false`` = the plain local tracker."""

    enabled: bool = True            # false: never LOST, no global search (--recovery off)
    proposals: ProposalConfig = ProposalConfig()
    switch: SwitchConfig = SwitchConfig()
    search: SearchConfig = SearchConfig()
    states: StateMachineConfig = StateMachineConfig()

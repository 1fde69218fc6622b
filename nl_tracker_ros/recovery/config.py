"""Configuration of the lost/re-found handling.

:class:`RecoveryConfig` holds what a user may set (ROS parameters ``recovery.*``). The sizes and
search settings below it are the method's own, fixed with the fitted switch: they are not
parameters, since any value but the one a switch file was fitted with can only break it.
"""
from __future__ import annotations

import dataclasses

from nl_tracker_ros.config import check_ranges, param
from nl_tracker_ros.errors import ConfigError
from nl_tracker_ros.state_machine import StateMachineConfig


@dataclasses.dataclass(frozen=True)
class RecoveryConfig:
    """Lost / re-found handling; ``enabled: false`` is the plain joint model (never LOST)."""

    enabled: bool = param(True, 'false: the plain joint model, never LOST, no whole-frame '
                                'search (--recovery off)')
    switch_weights: str = param('', 'retrieval switch safetensors (nl-tracker train-recovery), '
                                    "fitted for the model weights in use; '' = the shipped one "
                                    'for the shipped weights, else the confidence-only mode')
    colour_share: float = param(
        0.1, 'a match not held yet of a command naming one colour must show it on this share '
             'of its box (0: off)', (0, 1))
    kind_threshold: float = param(
        0.2, 'a match not held yet of a command naming one kind the kind classifier knows '
             'must show it with this probability (0: off)', (0, 0.999))
    kind_weights: str = param('', 'kind classifier safetensors (nl-tracker train-kinds), '
                                  "fitted for the model weights in use; '' = the shipped one "
                                  'for the shipped weights, else the kind check is off')
    states: StateMachineConfig = StateMachineConfig()

    def __post_init__(self):
        check_ranges(self, 'recovery')


# With the handling off, the same state machine acquires the first grounding and never weakens.
PLAIN_STATES = StateMachineConfig(accept_threshold=0.0, keep_threshold=0.0, trial_frames=0)


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

    def __post_init__(self):
        if self.top_k < 1 or self.peaks < 1:
            raise ConfigError('proposals: expected top_k >= 1 and peaks >= 1')
        if self.peak_window < 1 or self.peak_window % 2 == 0:
            raise ConfigError(f'proposals.peak_window: expected an odd number >= 1, '
                              f'got {self.peak_window}')


@dataclasses.dataclass(frozen=True)
class SwitchConfig:
    """Sizes of the adaptive retrieval switch (AdaRS)."""

    dim: int = 256                  # joint embedding width
    roi_size: int = 7               # RoIAlign output cells per side for each proposal
    fg_classifiers: int = 8         # N learnable key-value foreground classifiers (eq. 1-3)
    parts: int = 4                  # A learnable part prototypes (eq. 4-6)
    local_prototypes: int = 4       # L local semantic prototypes (eq. 7-16)
    heads: int = 4                  # attention heads of the part-aware cross-attention
    gpo_dim: int = 32               # GPO positional-encoding and GRU width

    def __post_init__(self):
        if self.dim % self.heads:
            raise ConfigError(f'switch: dim {self.dim} must be divisible by heads {self.heads}')


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Target-specific retrieval (TSR) over the whole frame: windows and their selector."""

    window_scales: tuple[float, ...] = (0.15, 0.3, 0.5)  # window side / sqrt(frame area)
    target_scales: tuple[float, ...] = (0.8, 1.0, 1.25)  # window size / last known target size
    aspects: tuple[float, ...] = (0.5, 1.0, 2.0)         # window height / width
    stride: float = 0.5              # window step as a fraction of the window size
    max_windows: int = 1500          # coarser stride beyond this, to bound the cost per search
    top_k: int = 3                   # best windows averaged into the global result
    agree_iou: float = 0.3           # only top windows overlapping the best one this much count
    window_margin: float = 0.1       # the windows replace the grounding box only this much better
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
        if self.dim % self.heads:
            raise ConfigError(f'search: dim {self.dim} must be divisible by heads {self.heads}')


@dataclasses.dataclass(frozen=True)
class MethodConfig:
    """The method's fixed settings: proposals, switch and search sizes."""

    proposals: ProposalConfig = ProposalConfig()
    switch: SwitchConfig = SwitchConfig()
    search: SearchConfig = SearchConfig()

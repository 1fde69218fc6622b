"""Lost/re-found handling for the paper model: jointnlt-base on an official-format checkpoint
(synthetic weights in the official layout, ``model.synthetic_weights``), without a fitted switch
(the confidence-only mode, said once) and with one fitted for it by train-recovery --data."""
import logging

import numpy as np
import pytest
import torch

from nl_tracker_ros import tracker as trk
from nl_tracker_ros.model.config import get_preset
from nl_tracker_ros.model.identity import file_sha256
from nl_tracker_ros.recovery.config import RecoveryConfig
from nl_tracker_ros.track_types import TrackState

FRAMES = 4


@pytest.fixture(scope='module')
def official(tmp_path_factory):
    """An official-format checkpoint of jointnlt-base (193M synthetic values, ~0.8 GB), and a
    tracker built on it by the node's builder with the lost/re-found handling on (defaults:
    no switch or kind classifier was fitted for it)."""
    from nl_tracker_ros.model.synthetic_weights import synthetic_official_state
    path = tmp_path_factory.mktemp('official') / 'JointNLT_ep0300.pth.tar'
    torch.save({'net': synthetic_official_state(get_preset('jointnlt-base')), 'epoch': 300},
               path)
    handler = _Records()
    logging.getLogger('nl_tracker_ros').addHandler(handler)
    try:
        tracker = trk.build_tracker(trk.TrackerConfig(preset='jointnlt-base',
                                                      weights=str(path)), 'cpu',
                                    RecoveryConfig())
    finally:
        logging.getLogger('nl_tracker_ros').removeHandler(handler)
    return path, tracker, handler.said


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.said = []

    def emit(self, record):
        self.said.append(record.getMessage())


@pytest.fixture(scope='module')
def sequence(lasot_folder):
    from nl_tracker_ros.training.fit_data import dataset_sequences
    return dataset_sequences([lasot_folder])[0][0]


def run_frames(tracker, sequence):
    """The sequence's description, then its first FRAMES frames through Tracker.update."""
    tracker.set_command(sequence.text, 0.0)
    return [tracker.update(sequence.load_frame(t), 0.1 * (t + 1)) for t in range(FRAMES)]


def checked(results):
    for r in results:
        assert r.state in TrackState and 0.0 <= r.score <= 1.0
        assert (r.box_xywh is None) or all(np.isfinite(r.box_xywh))
    assert results[0].timing_ms['ground'] > 0         # the command was grounded first


def test_official_checkpoint_without_a_switch_runs_on_its_own_confidence(official, sequence):
    path, tracker, said = official
    sha = file_sha256(path)[:12]
    switch_note = (f'recovery: no retrieval switch fitted for jointnlt-base weights sha256 '
                   f'{sha} (recovery.switch_weights is empty); lost/re-found runs on the '
                   f"model's own confidence, with no whole-frame retrieval score; fit one with: "
                   f'nl-tracker train-recovery --preset jointnlt-base --weights FILE --data DIR')
    kinds_note = (f'recovery: the kind check is off: no kind classifier fitted for '
                  f'jointnlt-base weights sha256 {sha} (recovery.kind_weights is empty); fit '
                  f'one with: nl-tracker train-kinds --preset jointnlt-base --weights FILE '
                  f'--data DIR')
    assert tracker.policy.notes == (switch_note, kinds_note)
    assert said.count(switch_note) == 1 and said.count(kinds_note) == 1
    scorer = tracker.policy.scorer
    assert scorer.switch is None and scorer.retrieval is None    # no random modules
    assert tracker.policy.kinds is None and tracker.policy.colour_threshold == 0.1
    results = run_frames(tracker, sequence)
    checked(results)
    # a whole-frame match scores the model's own confidence, on the grounding box alone
    step = tracker.global_step(sequence.load_frame(FRAMES - 1))
    found = tracker.policy.scorer.search(step.head, step.geometry, step.box_xywh, (160, 120))
    assert found.score == pytest.approx(step.score) and found.box_xywh == step.box_xywh
    assert found.source == 'grounding' and len(found.windows_xywh) == 0


def test_official_checkpoint_with_a_switch_fitted_for_it_tracks(official, sequence, tmp_path):
    """The switch is fitted as train-recovery fits it (collect + fit_recovery, on the same
    tracker: the base model is slow on a CPU), saved for this checkpoint, and built the way
    build_tracker builds it."""
    import time

    from nl_tracker_ros.model.identity import model_identity
    from nl_tracker_ros.recovery.config import MethodConfig
    from nl_tracker_ros.recovery.policy import build_policy
    from nl_tracker_ros.recovery.switch import save_recovery
    from nl_tracker_ros.training.recovery_fit import FitConfig, collect, fit_recovery
    path, tracker, _ = official
    dim = get_preset('jointnlt-base').dim
    cfg = FitConfig(frames_per_sequence=2, steps=2, batch_size=2)
    others = [(sequence.text, 'astronaut'), ('the red car', 'car')]
    samples = collect(tracker, [sequence], cfg, descriptions=others)
    fit = fit_recovery(samples, MethodConfig(), dim, dim, cfg)
    model = model_identity('jointnlt-base', path)
    switch = tmp_path / 'switch.safetensors'
    save_recovery(switch, fit.switch, fit.retrieval, MethodConfig(), dim, dim, model, {})
    tracker.policy = build_policy(RecoveryConfig(switch_weights=str(switch)), model, dim)
    assert tracker.policy.scorer.uses_switch
    assert tracker.policy.notes[0].startswith('recovery: the kind check is off')
    t0 = time.perf_counter()
    results = run_frames(tracker, sequence)
    seconds = time.perf_counter() - t0
    checked(results)
    assert seconds < 120, f'{FRAMES} base-model frames took {seconds:.0f} s'

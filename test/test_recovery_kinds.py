"""The kind check: crops, kind words, the classifier, its weights file and its fit."""
import json

import numpy as np
import pytest
import torch

from nl_tracker_ros.errors import CheckpointError, ConfigError
from nl_tracker_ros.model.identity import RANDOM, SHIPPED, ModelIdentity
from nl_tracker_ros.recovery.kinds import (BACKGROUND, KindCheck, KindClassifier, crops,
                                           load_classifier, named_kind, save_classifier)
from nl_tracker_ros.training.kinds_fit import (CropSet, KindsFitConfig, check_rates,
                                               collect_crops, fit_kinds, probabilities,
                                               scene_kinds)

KINDS = ('star', 'cross', 'coffee cup', BACKGROUND)
TINY = ModelIdentity('jointnlt-tiny', RANDOM)


def test_crops_cut_the_box_with_context_and_black_outside():
    image = np.zeros((100, 120, 3), np.uint8)
    image[20:60, 30:70] = (200, 10, 10)
    x = crops(image, [(30, 20, 40, 40), (-30, -30, 10, 10)], 32)
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    assert torch.allclose(x[0, :, 16, 16], torch.tensor([200, 10, 10]) / 255.0)
    assert float(x[0, :, 1, 1].max()) == 0.0          # the context around the box
    assert float(x[1].max()) == 0.0                    # wholly outside the frame


def test_named_kind_finds_one_known_kind_or_none():
    assert named_kind('Follow the red STAR on the left', KINDS) == 'star'
    assert named_kind('track the coffee cup', KINDS) == 'coffee cup'
    assert named_kind('the starfish', KINDS) is None            # whole words only
    assert named_kind('the star next to the cross', KINDS) is None     # which one is it?
    assert named_kind('the person in the red jacket', KINDS) is None
    assert named_kind('the background', KINDS) is None          # not a kind to look for


def test_classifier_weights_round_trip_and_say_what_does_not_fit(tmp_path):
    torch.manual_seed(0)
    c = KindClassifier(KINDS, dim=16, crop=24).eval()
    path = tmp_path / 'kinds.safetensors'
    save_classifier(path, c, TINY, {'generated': {'seed': 4}})
    back = load_classifier(path)
    assert back.kinds == KINDS and back.crop == 24 and not back.training
    x = torch.rand(2, 3, 24, 24)
    with torch.no_grad():
        assert torch.allclose(back(x), c(x))
    check = KindCheck(back)
    assert check.named('the cross') == 'cross'
    image = np.random.default_rng(0).integers(0, 255, (50, 60, 3), dtype=np.uint8)
    p = [check.probability(image, (5, 5, 20, 10), k) for k in KINDS]
    assert sum(p) == pytest.approx(1.0, abs=1e-5) and min(p) > 0
    from safetensors.torch import load_file, save_file
    state = load_file(str(path))
    save_file(state, str(tmp_path / 'bare.safetensors'))         # no kinds in the metadata
    with pytest.raises(CheckpointError, match='unreadable, expected a file written by'):
        load_classifier(tmp_path / 'bare.safetensors')
    state['head.bias'] = torch.zeros(7)
    save_file(state, str(tmp_path / 'other.safetensors'),
              {'kinds': json.dumps(KINDS), 'crop': '24', 'dim': '16'})
    with pytest.raises(CheckpointError, match='does not fit its own kinds'):
        load_classifier(tmp_path / 'other.safetensors')
    with pytest.raises(CheckpointError, match='not found'):
        load_classifier(tmp_path / 'none.safetensors')


def test_crops_of_scenes_are_labelled_with_their_objects_kinds():
    cfg = KindsFitConfig(scenes=3, preset='heldout', frames_per_sequence=2, crop=16)
    data = collect_crops(cfg)
    assert data.kinds == scene_kinds() and data.kinds[-1] == BACKGROUND
    assert data.crops.dtype == torch.uint8 and data.crops.shape[1:] == (3, 16, 16)
    assert len(data.crops) == len(data) > 6
    found = set(np.array(data.kinds)[data.label])
    assert BACKGROUND in found and len(found) >= 3
    again = collect_crops(cfg)
    assert torch.equal(again.crops, data.crops) and np.array_equal(again.label, data.label)
    other = collect_crops(cfg, seed=10000)
    assert not (len(other) == len(data) and torch.equal(other.crops, data.crops))
    with pytest.raises(ConfigError, match='kinds.min_visible'):
        KindsFitConfig(min_visible=1.5)


def test_fit_learns_a_toy_kind_rule_and_the_rates_say_so():
    n = 96
    pixels = torch.zeros(n, 3, 16, 16, dtype=torch.uint8)
    label = np.arange(n) % 3                  # 0: red 'star', 1: blue 'cross', 2: background
    pixels[label == 0, 0] = 200
    pixels[label == 1, 2] = 200
    data = CropSet(pixels, label, ('star', 'cross', BACKGROUND))
    cfg = KindsFitConfig(dim=16, crop=16, steps=60, batch_size=16, lr=5e-3)
    p = probabilities(fit_kinds(data, cfg), data)
    assert (p.argmax(1) == label).all()
    rates = check_rates(p, data, 0.5)
    assert rates == {'kept': 1.0, 'rejected_other': 1.0, 'rejected_background': 1.0,
                     'accuracy': 1.0}
    # a check that keeps everything rejects nothing
    assert check_rates(np.full_like(p, 1.0), data, 0.5)['rejected_other'] == 0.0


def test_train_kinds_writes_weights_the_policy_loads_and_the_check_rates(tmp_path):
    from nl_tracker_ros.cli import main
    from nl_tracker_ros.recovery.config import RecoveryConfig
    from nl_tracker_ros.recovery.kinds import classifier_model
    from nl_tracker_ros.recovery.policy import build_policy
    out = tmp_path / 'kinds'
    assert main(['train-kinds', '--out', str(out), '--scenes', '2', '--steps', '3',
                 '--check-scenes', '1']) == 0
    assert load_classifier(out / 'kinds.safetensors').kinds == scene_kinds()
    # generated scenes: it goes with the shipped embedded model, as the shipped classifier
    compact = ModelIdentity('jointnlt-compact', SHIPPED)
    assert classifier_model(out / 'kinds.safetensors') == compact
    rates = json.loads((out / 'check.json').read_text())
    assert set(rates) == {'0.05', '0.1', '0.2', '0.3', '0.5'}
    assert set(rates['0.1']) == {'kept', 'rejected_other', 'rejected_background', 'accuracy'}
    cfg = RecoveryConfig(kind_threshold=0.1, kind_weights=str(out / 'kinds.safetensors'))
    policy = build_policy(cfg, compact, 128)
    policy.command('follow the hexagon', 0.0)
    assert policy.kind == 'hexagon'
    with pytest.raises(CheckpointError, match='not found'):
        build_policy(RecoveryConfig(kind_threshold=0.1, kind_weights=str(tmp_path / 'no')),
                     compact, 128)


def test_train_kinds_on_a_lasot_folder_learns_its_categories_for_the_model_named(
        lasot_folder, tmp_path):
    from nl_tracker_ros.cli import main
    from nl_tracker_ros.recovery.config import RecoveryConfig
    from nl_tracker_ros.recovery.kinds import classifier_model
    from nl_tracker_ros.recovery.policy import build_policy
    from safetensors import safe_open
    out = tmp_path / 'kinds'
    assert main(['train-kinds', '--data', str(lasot_folder), '--preset', 'jointnlt-tiny',
                 '--random-weights', '--out', str(out), '--steps', '3']) == 0
    path = out / 'kinds.safetensors'
    classifier = load_classifier(path)
    # LaSOT's categories are its class folders
    assert classifier.kinds == ('astronaut', 'coffeecup', 'diamond', BACKGROUND)
    assert classifier_model(path) == TINY
    with safe_open(str(path), 'pt') as f:
        data = json.loads(f.metadata()['data'])
    assert data['sources'][0]['layout'] == 'lasot' and len(data['sequences']) == 4
    assert data['crops'] >= 4 * 6
    cfg = RecoveryConfig(kind_weights=str(path))
    policy = build_policy(cfg, TINY, 16)
    assert policy.kinds is not None and not policy.notes[1:]
    policy.command('track the gray diamond', 0.0)
    assert policy.kind == 'diamond'
    other = ModelIdentity('jointnlt-base', 'ab' * 32)
    with pytest.raises(CheckpointError) as err:         # it goes with the tiny model only
        build_policy(cfg, other, 256)
    assert str(err.value) == (
        f'kind classifier {path} was fitted for jointnlt-tiny random weights, not for the '
        f'jointnlt-base weights sha256 abababababab in use; fit one with: nl-tracker '
        f'train-kinds --preset jointnlt-base --weights FILE --data DIR')


def test_kind_check_is_off_for_other_weights_without_a_classifier(caplog):
    from nl_tracker_ros.recovery.config import RecoveryConfig
    from nl_tracker_ros.recovery.policy import build_policy
    shipped = build_policy(RecoveryConfig(), ModelIdentity('jointnlt-compact', SHIPPED), 128)
    assert shipped.kinds is not None and shipped.notes == ()     # the shipped pair
    official = ModelIdentity('jointnlt-base', 'ab' * 32)
    with caplog.at_level('WARNING'):
        policy = build_policy(RecoveryConfig(), official, 256)
    assert policy.kinds is None and policy.kind_threshold == 0.2
    policy.command('follow the star', 0.0)
    assert policy.kind is None                        # the check stays off for every command
    note = ('recovery: the kind check is off: no kind classifier fitted for jointnlt-base '
            'weights sha256 abababababab (recovery.kind_weights is empty); fit one with: '
            'nl-tracker train-kinds --preset jointnlt-base --weights FILE --data DIR')
    assert note in policy.notes
    assert [r.getMessage() for r in caplog.records].count(note) == 1
    assert policy.colour_threshold == 0.1             # the colour check reads pixels: kept

"""Fitting the switch: samples from datasets and generated scenes, a short fit, weights the
tracker loads for the model they were fitted on, and for no other."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from nl_tracker_ros import tracker as trk
from nl_tracker_ros.errors import CheckpointError, ConfigError
from nl_tracker_ros.model.config import get_preset
from nl_tracker_ros.recovery.config import MethodConfig, RecoveryConfig
from nl_tracker_ros.model.identity import RANDOM, SHIPPED, ModelIdentity, file_sha256
from nl_tracker_ros.recovery.switch import build_modules, load_recovery, save_recovery
from nl_tracker_ros.scenes import distractor_boxes, get_mix, plan_scene
from nl_tracker_ros.training.fit_data import dataset_sequences, generated_sequences
from nl_tracker_ros.training.recovery_fit import (FitConfig, collect, fit_recovery,
                                                  partial_windows, separation)

SMALL = MethodConfig()
SMALL = dataclasses.replace(
    SMALL, switch=dataclasses.replace(SMALL.switch, dim=32, heads=2, gpo_dim=8),
    search=dataclasses.replace(SMALL.search, dim=32, heads=2))


def test_distractor_boxes_sit_on_the_distractors_of_frame_one():
    recipe = get_mix('heldout').sample(np.random.default_rng([3, 0, 0]), 320, 240, 20)
    plan = plan_scene(recipe, 3, 0)
    boxes = distractor_boxes(plan, 0)
    assert len(boxes) >= 1
    centres = np.array([(x + w / 2, y + h / 2) for x, y, w, h in boxes])
    for seen in plan.seen:      # every object seen in frame 1 that is not the target
        if seen.area > 0:
            assert np.hypot(*(centres - (seen.cx, seen.cy)).T).min() < 0.35 * seen.area ** 0.5
    for x, y, w, h in boxes:
        assert x >= 0 and y >= 0 and x + w <= 320 and y + h <= 240 and w > 0 and h > 0


def test_distractors_say_how_much_of_each_is_hidden():
    from nl_tracker_ros.scenes import distractors, render_scene
    seen = []
    for index in range(3):
        recipe = get_mix('heldout').sample(np.random.default_rng([3, index, 0]), 320, 240, 40)
        plan = plan_scene(recipe, 3, index)
        for t, frame in enumerate(render_scene(plan)):
            found = distractors(plan, t)
            assert [box for _, box, _ in found] == distractor_boxes(plan, t)
            kinds = {lay.spec.kind for lay in plan.layers if lay.role == 'distractor'}
            assert all(spec.kind in kinds for spec, _, _ in found)
            seen += [v for _, _, v in found]
    seen = np.array(seen)
    assert ((seen >= 0) & (seen <= 1)).all()
    assert (seen == 1).mean() > 0.5 and (seen < 0.9).any()    # mostly in view, some hidden


def tiny():
    return trk.build_tracker(trk.TrackerConfig(preset='jointnlt-tiny', random_weights=True),
                             'cpu')


def scenes(cfg: FitConfig):
    return generated_sequences(cfg.scenes, cfg.seed, cfg.preset, cfg.width, cfg.height)


@pytest.fixture(scope='module')
def samples():
    cfg = FitConfig(scenes=2, seed=4, preset='heldout', frames_per_sequence=6,
                    global_share=0.5)
    return collect(tiny(), scenes(cfg), cfg)


def test_collect_gives_features_and_boxes_in_the_input_frame(samples):
    assert 6 <= len(samples) <= 12
    assert {s.kind for s in samples} == {'local', 'global'}
    for s in samples:
        assert s.features.dim() == 3 and s.features.dtype == torch.float16
        assert s.hard.shape[1:] == (4,) and s.text.shape[0] == s.text_pad.shape[0]
        assert s.wrong_text.shape[1] == s.text.shape[1]
        assert s.wrong_text.shape[0] == s.wrong_pad.shape[0]
        n = min(len(s.text), len(s.wrong_text))   # another description: other tokens
        assert not torch.equal(s.text[:n], s.wrong_text[:n])
        if s.present:
            assert ((s.target[:2] > 0) & (s.target[:2] < 1)).all() and (s.target[2:] > 0).all()
        for h in s.hard:
            assert 0 < h[0] < 1 and 0 < h[1] < 1
    assert any(s.present for s in samples)


def test_wrong_template_scenes_start_on_a_distractor():
    tracker = tiny()
    starts, real = [], tracker.set_command

    def spy(text, stamp, box_xywh=None, **kw):
        starts.append((text, box_xywh))
        return real(text, stamp, box_xywh=box_xywh, **kw)

    tracker.set_command = spy
    cfg = FitConfig(scenes=2, seed=4, preset='heldout', frames_per_sequence=2,
                    wrong_template_share=1.0)
    samples = collect(tracker, scenes(cfg), cfg)
    assert len(starts) == 2 and samples
    for i, (text, box) in enumerate(starts):
        plan = plan_scene(get_mix('heldout').sample(np.random.default_rng([4, i, 0]), 320, 240,
                                                    None), 4, i)
        assert text == plan.text      # the description stays the target's: labels follow it
        assert tuple(box) in {tuple(b) for b in distractor_boxes(plan, 0)}
    with pytest.raises(ConfigError, match='wrong_template_share'):
        FitConfig(wrong_template_share=1.5)


def test_unmatched_samples_ground_a_description_that_fits_no_object(monkeypatch):
    from nl_tracker_ros.scenes import grammar
    tracker = tiny()
    said, ran = [], []
    real_unmatched = grammar.unmatched

    def spy_unmatched(objects, rng, words):
        said.append((objects, words, real_unmatched(objects, rng, words)))
        return said[-1][2]

    def spy(name):
        real = getattr(tracker, name)

        def step(*args):
            ran.append((name, tracker.text_features.tokens[0].float()))
            return real(*args)
        return step

    monkeypatch.setattr(grammar, 'unmatched', spy_unmatched)
    tracker.global_step, tracker.local_step = spy('global_step'), spy('local_step')
    cfg = FitConfig(scenes=2, seed=4, preset='heldout', frames_per_sequence=3,
                    global_share=0.0, unmatched_share=1.0)
    samples = collect(tracker, scenes(cfg), cfg)
    assert [s.kind for s in samples] == ['local', 'unmatched'] * 6
    assert [w for _, w, _ in said] == ['kind', 'colour-kind']        # half name no colour
    for objects, _, text in said:
        words = text.split()[1:]                 # ['star'] or ['purple', 'star']
        assert not any(o.kind == words[-1] and (len(words) == 1 or o.colour == words[0])
                       for o in objects), text
    # whole-frame steps grounded the unmatched description; local steps kept the command
    assert [name for name, _ in ran] == ['local_step', 'global_step'] * 6
    for (_, tokens), s in zip(ran, samples):
        assert torch.equal(tokens, s.text)
    for plain, extra in zip(samples[::2], samples[1::2]):
        assert not extra.present
        assert not torch.equal(extra.text[:2], plain.text[:2])
        assert len(extra.hard) >= 1        # the target and the distractors are all negatives
    with pytest.raises(ConfigError, match='unmatched_share'):
        FitConfig(unmatched_share=-0.1)


def test_unmatched_names_a_colour_when_every_kind_is_taken():
    from nl_tracker_ros.scenes.appearance import SHAPES, ObjectSpec
    from nl_tracker_ros.scenes.grammar import unmatched
    rng = np.random.default_rng(0)
    every = [ObjectSpec(kind=k, colour='red') for k in SHAPES]
    for _ in range(20):
        colour, kind = unmatched(every, rng, 'kind').split()[1:]
        assert kind in SHAPES and colour != 'red'
    assert unmatched(every[1:], rng, 'kind') == f'the {SHAPES[0]}'


def test_fit_writes_weights_the_recovery_loads(samples, tmp_path):
    dim = get_preset('jointnlt-tiny').dim
    cfg = FitConfig(steps=3, batch_size=4)
    res = fit_recovery(samples, SMALL, dim, dim, cfg, log_every=1)
    assert [r['step'] for r in res.curve] == [1, 2, 3]
    assert all(np.isfinite(r['loss']) for r in res.curve)
    path = tmp_path / 'switch.safetensors'
    model = ModelIdentity('jointnlt-tiny', RANDOM)
    save_recovery(path, res.switch, res.retrieval, SMALL, dim, dim, model, {})
    rec = load_recovery(path, model, dim)
    assert rec.uses_switch
    got = rec.switch.state_dict()
    for k, v in res.switch.state_dict().items():
        assert torch.equal(got[k], v)
    sep = separation(res.switch, samples)
    assert len(sep['target']) == sum(s.present for s in samples)
    assert len(sep['best_other']) == len(samples)
    assert len(sep['wrong_text']) == len(sep['target'])
    assert np.all(np.abs(sep['best_other']) <= 1.0 + 1e-5)


def test_an_interrupted_fit_resumes_to_the_same_weights(samples, tmp_path):
    dim = get_preset('jointnlt-tiny').dim
    cfg = FitConfig(steps=4, batch_size=4, save_every=2)
    whole = fit_recovery(samples, SMALL, dim, dim, cfg, log_every=1)

    def interrupt(step, row):
        if step == 3:
            raise KeyboardInterrupt

    state = tmp_path / 'fit_state.pt'
    with pytest.raises(KeyboardInterrupt):
        fit_recovery(samples, SMALL, dim, dim, cfg, log_every=1, state=state,
                     progress=interrupt)
    steps = []
    resumed = fit_recovery(samples, SMALL, dim, dim, cfg, log_every=1, state=state,
                           progress=lambda step, row: steps.append(step))
    assert steps == [3, 4]                          # it went on from the state of step 2
    assert resumed.curve == whole.curve
    for k, v in whole.switch.state_dict().items():
        assert torch.equal(resumed.switch.state_dict()[k], v), k
    again = fit_recovery(samples, SMALL, dim, dim, cfg, log_every=1, state=state,
                         progress=lambda step, row: steps.append(step))
    assert steps == [3, 4] and again.curve == whole.curve      # finished: nothing to do
    for k, v in whole.switch.state_dict().items():
        assert torch.equal(again.switch.state_dict()[k], v), k
    state.write_bytes(b'torn')
    with pytest.raises(CheckpointError, match='fit_state.pt: unusable'):
        fit_recovery(samples, SMALL, dim, dim, cfg, state=state)


def test_written_scenes_give_the_samples_of_the_generator(tmp_path):
    """--data over scenes written by nl-tracker scenes draws what the generator path draws:
    the same frames, boxes, look-alikes and steps; only the JPEG round trip differs."""
    from nl_tracker_ros.scenes import generate
    cfg = FitConfig(scenes=2, seed=4, preset='heldout', width=160, height=120,
                    frames_per_sequence=4, global_share=0.5)
    tracker = tiny()
    direct = collect(tracker, scenes(cfg), cfg)
    generate(tmp_path / 'scenes', 2, 4, 'heldout', 160, 120)
    sequences, data = dataset_sequences([tmp_path / 'scenes'])
    assert data['with_generator_extras'] == 2 and data['sources'][0]['layout'] == 'scenes'
    read = collect(tracker, sequences, cfg)
    assert [s.kind for s in read] == [s.kind for s in direct]
    assert any(len(s.hard) for s in read)             # the distractors, from meta.json
    for a, b in zip(read, direct):
        assert torch.equal(a.target, b.target) and torch.equal(a.hard, b.hard)
        assert a.present == b.present and torch.equal(a.wrong_text, b.wrong_text)
        cos = torch.nn.functional.cosine_similarity(a.features.float().flatten(),
                                                    b.features.float().flatten(), 0)
        assert cos > 0.95, cos          # the same frame, through JPEG


def test_dataset_samples_build_negatives_from_the_annotations_alone(lasot_folder):
    sequences, data = dataset_sequences([lasot_folder])
    assert data['with_generator_extras'] == 0 and len(sequences) == 4
    tracker = tiny()
    texts = {}
    real = tracker.encode_text

    def spy(text):
        features = real(text)
        texts[text] = features.tokens[0].float()
        return features

    tracker.encode_text = spy
    cfg = FitConfig(frames_per_sequence=30, global_share=0.3, partial_windows=2)
    samples = collect(tracker, sequences, cfg)
    assert len(samples) == 4 * 30
    own = {s.text for s in sequences}
    # the wrong description of each sequence is another sequence's (another category's)
    assert set(texts) <= own and len(texts) >= 2
    for s in samples:
        assert any(torch.equal(s.wrong_text, t) for t in texts.values())
        assert not torch.equal(s.wrong_text[:2], s.text[:2])
    # frames with the target absent are samples without a target
    assert sum(not s.present for s in samples) >= 8
    from nl_tracker_ros.training.recovery_loss import box_iou_cxcywh
    overlaps = [float(box_iou_cxcywh(h, s.target)) for s in samples if s.present
                for h in s.hard]
    assert overlaps and all(0.0 < v < 0.35 for v in overlaps)    # partial-overlap windows
    present = [s for s in samples if s.present]
    assert sum(len(s.hard) == 2 for s in present) > 0.8 * len(present)   # two, where in view


def test_partial_windows_overlap_their_box_partially():
    from nl_tracker_ros.boxes import iou_xywh
    rng = np.random.default_rng(0)
    box = (40.0, 30.0, 20.0, 50.0)
    windows = partial_windows(box, 50, rng)
    ious = [float(iou_xywh(np.array(w), np.array(box))) for w in windows]
    assert len(windows) == 50 and 0.05 < min(ious) and max(ious) < 0.3
    assert np.std([w[0] for w in windows]) > 5 and np.std([w[1] for w in windows]) > 10


def test_contradicted_descriptions_never_fit_the_target():
    from nl_tracker_ros.scenes.grammar import contradict, phrase
    rng = np.random.default_rng(0)
    kinds = set()
    for i in range(40):
        recipe = get_mix('train').sample(np.random.default_rng([5, i, 0]), 320, 240, 20)
        plan = plan_scene(recipe, 5, i)
        spec = plan.target_seen.spec
        d = contradict(plan.description, spec, rng)
        fits = (d.noun == spec.kind and (not d.colour or d.colour == spec.colour)
                and (not d.texture or d.texture == spec.texture))
        assert not fits and not d.size and not d.position, (plan.text, d)
        assert d.noun in phrase(d, rng)
        kinds.add(spec.is_sprite)
    assert kinds == {True, False}      # both sprites and shapes were contradicted


def test_fit_config_checks_its_values():
    with pytest.raises(ConfigError, match='fit.steps'):
        FitConfig(steps=0)
    with pytest.raises(ConfigError, match='fit.global_share'):
        FitConfig(global_share=1.5)


def test_shipped_switch_goes_with_the_shipped_weights_only(tmp_path, monkeypatch, caplog):
    from nl_tracker_ros.model import checkpoint
    from nl_tracker_ros.model.jointnlt import build_model
    cfg = get_preset('jointnlt-tiny')
    monkeypatch.setattr(checkpoint, 'SHIPPED_DIR', tmp_path)
    checkpoint.save_weights(build_model(cfg), tmp_path / 'jointnlt-tiny.safetensors', cfg)
    save_recovery(tmp_path / 'jointnlt-tiny.switch.safetensors',
                  *build_modules(MethodConfig(), cfg.dim, cfg.dim), MethodConfig(), cfg.dim,
                  cfg.dim, ModelIdentity('jointnlt-tiny', SHIPPED), {})
    shipped = trk.build_tracker(trk.TrackerConfig(preset='jointnlt-tiny'), 'cpu',
                                RecoveryConfig())
    assert shipped.policy.scorer.uses_switch
    assert shipped.policy.kinds is None        # no kind classifier in this install: off
    assert len(shipped.policy.notes) == 1
    assert shipped.policy.notes[0].startswith('recovery: the kind check is off')
    own = tmp_path / 'own.safetensors'     # other model weights: the shipped switch does not fit
    checkpoint.save_weights(build_model(cfg), own)
    with caplog.at_level('WARNING'):
        other = trk.build_tracker(trk.TrackerConfig(preset='jointnlt-tiny', weights=str(own)),
                                  'cpu', RecoveryConfig())
    assert not other.policy.scorer.uses_switch
    note = (f'recovery: no retrieval switch fitted for jointnlt-tiny weights sha256 '
            f'{file_sha256(own)[:12]} (recovery.switch_weights is empty); lost/re-found runs '
            f"on the model's own confidence, with no whole-frame retrieval score; fit one with: "
            f'nl-tracker train-recovery --preset jointnlt-tiny --weights FILE --data DIR')
    assert other.policy.notes[0] == note
    assert [r.getMessage() for r in caplog.records].count(note) == 1      # said once
    with pytest.raises(CheckpointError) as err:          # named explicitly: refused
        trk.build_tracker(trk.TrackerConfig(preset='jointnlt-tiny', weights=str(own)), 'cpu',
                          RecoveryConfig(switch_weights=str(
                              tmp_path / 'jointnlt-tiny.switch.safetensors')))
    assert 'was fitted for jointnlt-tiny shipped weights, not for the jointnlt-tiny weights ' \
        f'sha256 {file_sha256(own)[:12]} in use' in str(err.value)
    # the shipped weights given by path are the shipped weights
    again = trk.build_tracker(trk.TrackerConfig(
        preset='jointnlt-tiny', weights=str(tmp_path / 'jointnlt-tiny.safetensors')), 'cpu',
        RecoveryConfig())
    assert again.policy.scorer.uses_switch


@pytest.fixture(scope='module')
def fitted(lasot_folder, tmp_path_factory):
    """train-recovery --data on the LaSOT folder for a tiny model with random weights saved to
    a file: (model weights, run folder, printed output)."""
    import contextlib
    import io

    from nl_tracker_ros.cli import main
    from nl_tracker_ros.model import checkpoint
    from nl_tracker_ros.model.jointnlt import build_model
    root = tmp_path_factory.mktemp('fit')
    weights = root / 'tiny.safetensors'
    torch.manual_seed(1)
    checkpoint.save_weights(build_model(get_preset('jointnlt-tiny')), weights)
    out = root / 'run'
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert main(['train-recovery', '--data', str(lasot_folder), '--preset', 'jointnlt-tiny',
                     '--weights', str(weights), '--out', str(out), '--steps', '4',
                     '--frames-per-sequence', '3', '--no-progress']) == 0
    return weights, out, text.getvalue()


def test_train_recovery_on_a_lasot_folder_writes_what_it_fits(fitted, lasot_folder):
    from safetensors import safe_open
    weights, out, printed = fitted
    path = out / 'switch.safetensors'
    with safe_open(str(path), 'pt') as f:
        meta = f.metadata()
    assert meta['format'] == 'nl_tracker_ros.recovery'
    assert meta['model_preset'] == 'jointnlt-tiny'
    assert meta['model_weights'] == file_sha256(weights)
    assert json.loads(meta['method']) == json.loads(json.dumps(
        dataclasses.asdict(MethodConfig())))
    assert json.loads(meta['feat_dim']) == json.loads(meta['text_dim']) == 32
    data = json.loads(meta['data'])
    assert data['sources'] == [{'folder': str(lasot_folder), 'layout': 'lasot',
                                'sequences': 4}]
    assert data['sequences'] == ['astronaut-1', 'astronaut-3', 'coffeecup-2', 'diamond-4']
    assert data['samples'] == 12 and data['with_generator_extras'] == 0
    assert json.loads(meta['fit'])['frames_per_sequence'] == 3
    assert sorted(p.name for p in (out / 'samples').iterdir()) == [
        f'{i:05d}.pt' for i in range(4)]
    assert (out / 'curve.csv').read_text().count('\n') == 1 + 1     # header, the last step
    assert 'P(target > other)' in printed and str(path) in printed


def test_node_builder_and_eval_load_the_fitted_switch(fitted, lasot_folder, tmp_path,
                                                      monkeypatch):
    from safetensors.torch import load_file

    from nl_tracker_ros.cli import main
    from nl_tracker_ros.recovery import policy as policy_mod
    from nl_tracker_ros.ros.params import configs_from_values
    weights, out, _ = fitted
    path = str(out / 'switch.safetensors')
    # the node: parameters -> configs -> build_tracker
    c = configs_from_values({'tracker.preset': 'jointnlt-tiny', 'tracker.weights': str(weights),
                             'recovery.switch_weights': path})
    tracker = trk.build_tracker(c.tracker, 'cpu', c.recovery)
    scorer = tracker.policy.scorer
    assert scorer.uses_switch and tracker.policy.kinds is None
    saved = load_file(path)
    for k, v in scorer.switch.state_dict().items():
        assert torch.equal(v, saved[f'switch.{k}']), k
    # nl-tracker eval, with the switch named in its --config
    loaded = []
    real = policy_mod.load_recovery
    monkeypatch.setattr(policy_mod, 'load_recovery',
                        lambda *a, **k: loaded.append(a[0]) or real(*a, **k))
    cfg = tmp_path / 'recovery.yaml'
    cfg.write_text(f'recovery:\n  switch_weights: {path}\n')
    assert main(['eval', str(lasot_folder), '--preset', 'jointnlt-tiny', '--weights',
                 str(weights), '--config', str(cfg), '--limit', '1', '--worst', '0',
                 '--no-progress', '--out', str(tmp_path / 'eval')]) == 0
    assert loaded == [path]
    report = json.loads((tmp_path / 'eval' / 'report.json').read_text())
    assert report['configurations']['recovery-on']['frames_total'] == 40


def test_train_recovery_resumes_its_run_folder_and_refuses_other_settings(fitted, lasot_folder,
                                                                          monkeypatch):
    from safetensors.torch import load_file

    from nl_tracker_ros.cli import main
    from nl_tracker_ros.tracker import Tracker
    weights, out, _ = fitted
    before = load_file(str(out / 'switch.safetensors'))
    steps = []
    monkeypatch.setattr(Tracker, 'global_step', lambda *a: steps.append(a))
    monkeypatch.setattr(Tracker, 'local_step', lambda *a: steps.append(a))
    args = ['train-recovery', '--data', str(lasot_folder), '--preset', 'jointnlt-tiny',
            '--weights', str(weights), '--out', str(out), '--steps', '4',
            '--frames-per-sequence', '3', '--no-progress']
    assert main(args) == 0
    assert steps == []                      # every sequence's samples came from the folder
    after = load_file(str(out / 'switch.safetensors'))
    assert all(torch.equal(before[k], after[k]) for k in before)
    (out / 'fit_state.pt').write_bytes(b'a stale state')
    assert main(args[:-4] + ['3'] + args[-3:]) == 0      # --steps 3: the same samples ...
    assert steps == []                                   # ... and a new fit, not the stale
    assert (out / 'fit_state.pt').read_bytes() != b'a stale state'    # state (unreadable)
    args[-2] = '4'                          # --frames-per-sequence 4: other samples
    assert main(args) == 2                  # refused (one line on stderr)


def test_a_switch_fitted_on_other_weights_is_refused_in_one_line(fitted, tmp_path):
    from nl_tracker_ros.model import checkpoint
    from nl_tracker_ros.model.jointnlt import build_model
    weights, out, _ = fitted
    other = tmp_path / 'other.safetensors'
    torch.manual_seed(2)
    checkpoint.save_weights(build_model(get_preset('jointnlt-tiny')), other)
    path = out / 'switch.safetensors'
    with pytest.raises(CheckpointError) as err:
        trk.build_tracker(trk.TrackerConfig(preset='jointnlt-tiny', weights=str(other)), 'cpu',
                          RecoveryConfig(switch_weights=str(path)))
    assert str(err.value) == (
        f'recovery switch {path} was fitted for jointnlt-tiny weights sha256 '
        f'{file_sha256(weights)[:12]}, not for the jointnlt-tiny weights sha256 '
        f'{file_sha256(other)[:12]} in use; fit one with: nl-tracker train-recovery --preset '
        f'jointnlt-tiny --weights FILE --data DIR')


def test_dataset_sequences_take_a_split_file_and_spread_a_maximum(lasot_folder, tmp_path):
    from nl_tracker_ros.errors import InputError
    from nl_tracker_ros.training.fit_data import read_names
    split = tmp_path / 'training_set.txt'
    split.write_text('diamond-4\n\nastronaut-1\nnot-there-9\n')
    seqs, data = dataset_sequences([lasot_folder], names=read_names(split))
    assert [s.name for s in seqs] == ['astronaut-1', 'diamond-4'] == data['sequences']
    assert [s.category for s in seqs] == ['astronaut', 'diamond']
    seqs, _ = dataset_sequences([lasot_folder], max_sequences=2)
    assert [s.name for s in seqs] == ['astronaut-1', 'diamond-4']      # first and last
    (tmp_path / 'empty.txt').write_text('\n')
    with pytest.raises(InputError, match='empty.txt: empty; expected one sequence name a line'):
        read_names(tmp_path / 'empty.txt')
    with pytest.raises(InputError, match='no annotated sequence found among the names listed'):
        dataset_sequences([lasot_folder], names=['cat-1'])

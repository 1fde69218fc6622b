"""Weights in and out: the official JointNLT checkpoint, and our own files.

Official checkpoint (``JointNLT_ep0300.pth.tar``): a dict whose ``net`` entry is the state dict of
``lib.models.JointNLT``; beside it the trainer pickles extras (settings, statistics, optimizer).
It is read with ``torch.load(weights_only=True)``; when that refuses the extras' classes, the
file is read again with each refused class replaced by an inert stand-in (nothing from the file
is imported or run), and everything but ``net`` is dropped (``weights_io.read_file``).

Key names are translated by an explicit prefix table (``official_pairs``) built from the config,
and loading is strict (``weights_io.load_strict``): missing, unexpected and misshaped keys are
listed in a CheckpointError, under the names the file uses.

Our own files: safetensors (preferred) holding our key names, or a torch file with a plain state
dict or a dict with a ``model`` entry.
"""
from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping

import torch
from torch import nn

from nl_tracker_ros.errors import CheckpointError
from nl_tracker_ros.model.weights_io import (load_strict, read_file, read_metadata,
                                             read_tensors, tensor_dict, write_safetensors)

_ENC = (('self_attn.in_proj_', 'attn.qkv.'), ('self_attn.out_proj.', 'attn.proj.'),
        ('linear1.', 'fc1.'), ('linear2.', 'fc2.'), ('norm1.', 'norm1.'), ('norm2.', 'norm2.'))
_DEC = (('self_attn.in_proj_', 'self_attn.qkv.'), ('self_attn.out_proj.', 'self_attn.proj.'),
        ('multihead_attn.in_proj_', 'cross_attn.qkv.'),
        ('multihead_attn.out_proj.', 'cross_attn.proj.'), ('linear1.', 'fc1.'),
        ('linear2.', 'fc2.'), ('norm1.', 'norm1.'), ('norm2.', 'norm2.'), ('norm3.', 'norm3.'))


def official_pairs(config) -> list[tuple[str, str]]:
    """(official key prefix, our key prefix) pairs for a Swin + BERT model of ``config``."""
    if config.vision != 'swin' or config.text != 'bert':
        raise CheckpointError(f'model {config.name}: the official layout exists only for '
                              f'Swin + BERT, not {config.vision} + {config.text}')
    pairs = [('visual_backbone.stages.0.pre_stage.', 'vision.swin.patch_embed.')]
    for i in range(len(config.swin_depths)):
        if i:
            pairs.append((f'visual_backbone.stages.{i}.pre_stage.',
                          f'vision.swin.layers.{i}.downsample.'))
        pairs.append((f'visual_backbone.stages.{i}.blocks.', f'vision.swin.layers.{i}.blocks.'))
        pairs.append((f'visual_backbone.norm{i}.', f'vision.out_norms.{i}.'))
    pairs.append(('language_backbone.bert.', 'text.'))

    def layers(off: str, ours: str, n: int, table) -> None:
        for i in range(n):
            pairs.extend((f'{off}.layers.{i}.{a}', f'{ours}.layers.{i}.{b}') for a, b in table)

    layers('vl_joint_trans.encoder', 'relation', config.relation_layers, _ENC)
    layers('temporal_decoder.encoder', 'sgtm_encoder', config.sgtm_encoder_layers, _ENC)
    layers('temporal_decoder.decoder', 'sgtm_decoder', config.sgtm_decoder_layers, _DEC)
    pairs.append(('temporal_decoder.decoder.norm.', 'sgtm_decoder.norm.'))
    layers('target_decoder', 'target_decoder', config.decoder_layers, _DEC)
    pairs.append(('target_decoder.norm.', 'target_decoder.norm.'))
    for corner in ('tl', 'br'):
        for k in range(1, 5):  # conv-BN-ReLU blocks: conv is .0, BN is .1 in both layouts
            pairs.append((f'box_head.conv{k}_{corner}.', f'head.{corner}.{k - 1}.'))
        pairs.append((f'box_head.conv5_{corner}.', f'head.{corner}.4.'))
    pairs += [('visu_proj.', 'vision_proj.'), ('text_proj.', 'text_proj.'),
              ('vl_pos_embed.weight', 'pos_embed'), ('sep_embed.weight', 'sep_token'),
              ('target_query_embed.weight', 'target_query'),
              ('temporal_query_embed.weight', 'temporal_query')]
    return pairs


def _rename(state: Mapping[str, torch.Tensor], pairs) -> tuple[dict, list[str]]:
    # Longest prefix first, so 'stages.0.pre_stage.' wins over shorter overlapping prefixes.
    order = sorted(pairs, key=lambda p: -len(p[0]))
    out, unmatched = {}, []
    for key, value in state.items():
        for src, dst in order:
            if key.startswith(src):
                out[dst + key[len(src):]] = value
                break
        else:
            unmatched.append(key)
    return out, unmatched


def from_official(state: Mapping[str, torch.Tensor], config) -> tuple[dict, list[str]]:
    """Official key names -> ours. Returns (renamed state, official keys with no rule)."""
    return _rename(state, official_pairs(config))


def to_official(state: Mapping[str, torch.Tensor], config) -> tuple[dict, list[str]]:
    """Our key names -> official ones (to run the official code on our weights)."""
    return _rename(state, [(b, a) for a, b in official_pairs(config)])


def official_name(config):
    """Function: our key -> its official name (unchanged when no rule applies)."""
    order = sorted(((b, a) for a, b in official_pairs(config)), key=lambda p: -len(p[0]))

    def name(key: str) -> str:
        for src, dst in order:
            if key.startswith(src):
                return dst + key[len(src):]
        return key
    return name


def is_official(state: Mapping[str, torch.Tensor]) -> bool:
    """True when the key names are the official code's (visual_backbone., vl_joint_trans.)."""
    return any(k.startswith(('visual_backbone.', 'vl_joint_trans.')) for k in state)


def load_weights(model: nn.Module, path: str | pathlib.Path, config) -> str:
    """Load an official or our own checkpoint into ``model`` strictly; returns its format.

    Official: a dict with ``net`` (or a bare state dict) under official key names. Ours:
    safetensors, or a state dict / dict with ``model`` under our key names.
    """
    path = pathlib.Path(path)
    obj = read_file(path, 'checkpoint', inert=True)
    label = f'checkpoint {path}'
    if isinstance(obj, Mapping) and 'net' in obj:
        state, where = tensor_dict(obj['net'], label, '"net"'), 'net'
    elif isinstance(obj, Mapping) and isinstance(obj.get('model'), Mapping):
        state, where = tensor_dict(obj['model'], label, '"model"'), 'model'
    else:
        state, where = tensor_dict(obj, label, 'the file'), 'file'
    if is_official(state):
        ours, unmatched = from_official(state, config)
        load_strict(model, ours, f'official checkpoint {path}', extra_unexpected=unmatched,
                    file_name=official_name(config), file_keys=len(state))
        return 'official'
    omitted = _omitted_prefixes(path)
    if omitted:
        state = _fill_pretrained(model, state, omitted, config, path)
    load_strict(model, state, f'checkpoint {path} ({where})')
    return 'ours'


# Top-level modules whose weights a config can load from pretrained files at build time, and
# the config field that says so: only these may be left out of a weights file.
_PRETRAINED = {'vision': 'vision_weights', 'text': 'text_weights'}


def _matches(key: str, prefixes) -> bool:
    return any(key == p or key.startswith(p + '.') for p in prefixes)


def _omitted_prefixes(path: pathlib.Path) -> list[str]:
    """The ``omitted`` metadata of one of our safetensors files ([] for other files)."""
    meta = read_metadata(path, 'checkpoint')
    try:
        omitted = json.loads(meta.get('omitted', '[]'))
    except ValueError:
        omitted = None
    if not isinstance(omitted, list) or not all(isinstance(p, str) for p in omitted):
        raise CheckpointError(f'checkpoint {path}: metadata "omitted" must be a JSON list of '
                              f'key prefixes, got {meta.get("omitted")!r}')
    return omitted


def _fill_pretrained(model: nn.Module, state: dict, omitted, config, path) -> dict:
    """Complete ``state`` with the model's own (pretrained, built-in) values under ``omitted``.

    A file may leave out only modules the config loads from pretrained files at build time;
    anything else would silently keep random weights.
    """
    for prefix in omitted:
        top = prefix.split('.', 1)[0]
        field = _PRETRAINED.get(top)
        if field is None or config is None or not getattr(config, field, ''):
            raise CheckpointError(
                f'checkpoint {path}: leaves out {prefix}.*, which the model config '
                f'{getattr(config, "name", None)!r} does not load from pretrained weights '
                f'(needs {field or "vision/text"} set)')
    out = dict(state)
    for k, v in model.state_dict().items():
        if k not in out and _matches(k, omitted):
            out[k] = v
    return out


SHIPPED_DIR = pathlib.Path(__file__).resolve().parent.parent / 'weights'


def shipped_weights(preset: str) -> pathlib.Path | None:
    """The weights file that ships with the package for ``preset`` (None when there is none)."""
    path = SHIPPED_DIR / f'{preset}.safetensors'
    return path if path.is_file() else None


def save_weights(model: nn.Module, path: str | pathlib.Path, config=None,
                 omit: tuple[str, ...] = (), keep: tuple[str, ...] = ()) -> None:
    """Write the model's state dict as safetensors (config JSON in the metadata if given).

    Keys under the ``omit`` prefixes (e.g. 'text', 'vision': pretrained backbones the config
    loads from their packages) are left out unless under a ``keep`` prefix (fine-tuned parts);
    ``load_weights`` fills them back from the built model.
    """
    from nl_tracker_ros.config import to_dict
    meta = {'format': 'nl_tracker_ros.jointnlt'}
    if config is not None:
        meta['config'] = json.dumps(to_dict(config))
    if omit:
        meta['omitted'] = json.dumps(list(omit))
    write_safetensors(path, {k: v for k, v in model.state_dict().items()
                             if not _matches(k, omit) or _matches(k, keep)}, meta)


def load_swin_weights(backbone: nn.Module, path: str) -> None:
    """ImageNet Swin weights (Microsoft or timm layout, e.g. swin_base_patch4_window7_224_22k)
    into a ``SwinBackbone``; later stages and the classifier are dropped on purpose."""
    obj = read_file(path, 'Swin weights')
    if isinstance(obj, Mapping) and 'model' in obj:
        obj = obj['model']
    state = tensor_dict(obj, f'Swin weights {path}', 'the Swin weights')
    # Microsoft's layout ends stage i with its downsample; timm starts stage i + 1 with it.
    microsoft = any(k.startswith('layers.0.downsample.') for k in state)
    n = len(backbone.swin.layers)
    ours = {}
    for k, v in state.items():
        if k.startswith(('head.', 'norm.')) or k.endswith('attn_mask'):
            continue
        if k.startswith('layers.'):
            _, i, rest = k.split('.', 2)
            i = int(i) + (1 if microsoft and rest.startswith('downsample.') else 0)
            if i >= n:
                continue
            k = f'layers.{i}.{rest}'
        ours['swin.' + k] = v
    own = backbone.state_dict()
    for k in own:  # derived indices (absent from timm files) and JointNLT's own output norms
        if k.startswith('out_norms.') or (k.endswith('relative_position_index')
                                          and k not in ours):
            ours[k] = own[k]
    load_strict(backbone, ours, f'Swin weights {path}')


def load_bert_dir(path: str | pathlib.Path):
    """A BERT-layout language model from a local directory (config.json + model.safetensors or
    pytorch_model.bin), e.g. bert-base-uncased saved by transformers; pretraining heads, the
    pooler and a 'bert.' prefix are dropped on purpose. Nothing is downloaded."""
    from transformers import BertConfig, BertModel

    d = pathlib.Path(path)
    cfg = d / 'config.json'
    if not cfg.is_file():
        raise CheckpointError(f'BERT directory {d}: config.json not found')
    weights = next((d / n for n in ('model.safetensors', 'pytorch_model.bin')
                    if (d / n).is_file()), None)
    if weights is None:
        raise CheckpointError(f'BERT directory {d}: no model.safetensors or pytorch_model.bin')
    try:
        config = BertConfig.from_json_file(str(cfg))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f'BERT config {cfg}: unreadable ({exc})') from None
    state = {}
    for k, v in read_tensors(weights, 'BERT weights').items():
        k = k[len('bert.'):] if k.startswith('bert.') else k
        if k.startswith(('cls.', 'pooler.')) or k.endswith('position_ids'):
            continue
        state[k] = v
    model = BertModel(config, add_pooling_layer=False)
    load_strict(model, state, f'BERT weights {weights}')
    return model

"""Weights in and out: the official JointNLT checkpoint, and our own files.

Official checkpoint (``JointNLT_ep0300.pth.tar``): a dict whose ``net`` entry is the state dict of
``lib.models.JointNLT``; beside it the trainer pickles extras (settings, statistics, optimizer).
It is read with ``torch.load(weights_only=True)``; when that refuses the extras' classes, the
file is read again with each refused class replaced by an inert stand-in (nothing from the file
is imported or run), and everything but ``net`` is dropped.

Key names are translated by an explicit prefix table (``official_pairs``) built from the config,
and loading is strict: missing, unexpected and misshaped keys are listed in a CheckpointError.

Our own files: safetensors (preferred) holding our key names, or a torch file with a plain state
dict or a dict with a ``model`` entry.
"""
from __future__ import annotations

import json
import logging
import pathlib
import pickle
from collections.abc import Mapping

import torch
from torch import nn

from nl_tracker_ros.errors import CheckpointError

log = logging.getLogger(__name__)

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


def _names(keys, limit: int = 8) -> str:
    keys = sorted(keys)
    more = f' (+{len(keys) - limit} more)' if len(keys) > limit else ''
    return '[' + ', '.join(keys[:limit]) + ']' + more


def load_state_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str,
                      extra_unexpected: list[str] = (), *, file_name=None,
                      file_keys: int | None = None) -> None:
    """Load ``state`` into ``model``; any missing, unexpected or misshaped key -> CheckpointError.

    The Swin relative-position indices are derived, so their values are checked, not trusted.
    Messages name keys the way the file does: ``file_name`` maps a model key to the file's
    name for it (renamed files); ``extra_unexpected`` are file keys that had no model name, and
    ``file_keys`` is the number of keys in the file (default: those of ``state`` and the extra).
    """
    named = file_name or (lambda k: k)
    own = model.state_dict()
    missing = [named(k) for k in set(own) - set(state)]
    unexpected = [named(k) for k in set(state) - set(own)] + list(extra_unexpected)
    shapes = [f'{named(k)} {tuple(state[k].shape)} in the file vs {tuple(own[k].shape)}'
              for k in set(own) & set(state) if tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        count = len(state) + len(extra_unexpected) if file_keys is None else file_keys
        parts = [f'{len(missing)} missing keys {_names(missing)}' if missing else '',
                 f'{len(unexpected)} unexpected keys {_names(unexpected)}' if unexpected else '',
                 f'{len(shapes)} shape mismatches {_names(shapes, 4)}' if shapes else '']
        raise CheckpointError(f'{source}: does not match this model ({len(own)} entries, the '
                              f'file has {count}): ' + '; '.join(p for p in parts if p))
    for k, v in state.items():
        if k.endswith('relative_position_index') and not own[k].is_meta and \
                not torch.equal(v.to(own[k].device), own[k]):
            raise CheckpointError(f'{source}: {named(k)} differs from the Swin window index '
                                  f'(another window size?)')
    model.load_state_dict(state, strict=True)


def official_name(config):
    """Function: our key -> its official name (unchanged when no rule applies)."""
    order = sorted(((b, a) for a, b in official_pairs(config)), key=lambda p: -len(p[0]))

    def name(key: str) -> str:
        for src, dst in order:
            if key.startswith(src):
                return dst + key[len(src):]
        return key
    return name


class _Inert:
    """Stand-in for a class the checkpoint refers to but we refuse to import."""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state) -> None:
        self.state = state


def _torch_load_inert(path: pathlib.Path):
    """weights_only load with every refused global replaced by an inert stand-in class."""
    names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    stand_ins = [(type(n.rsplit('.', 1)[-1], (_Inert,), {}), n) for n in names]
    log.warning('checkpoint %s: extras reference %d class(es) not allowed for weights-only '
                'loading (%s); read as inert placeholders and dropped', path, len(names),
                ', '.join(names[:5]))
    with torch.serialization.safe_globals(stand_ins):
        return torch.load(path, map_location='cpu', weights_only=True)


def read_checkpoint(path: str | pathlib.Path) -> dict:
    """Read a weights file without running code from it: safetensors or weights-only torch."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(f'checkpoint {path}: not found')
    if path.suffix == '.safetensors':
        from safetensors.torch import load_file
        try:
            return load_file(str(path), device='cpu')
        except Exception as exc:  # any reader failure: not a usable safetensors file
            raise CheckpointError(f'checkpoint {path}: unreadable safetensors ({exc})') from None
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError:
        try:
            return _torch_load_inert(path)
        except Exception as exc:  # still refused: name the file and what we expected
            raise CheckpointError(
                f'checkpoint {path}: cannot be read weights-only ({str(exc).splitlines()[0]}); '
                f'expected a torch file whose "net" entry is a state dict') from None
    except Exception as exc:  # zip/pickle corruption and the like
        raise CheckpointError(f'checkpoint {path}: unreadable ({type(exc).__name__}: '
                              f'{str(exc).splitlines()[0] if str(exc) else ""})') from None


def _tensor_dict(obj, path, what: str) -> dict:
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise CheckpointError(f'checkpoint {path}: expected {what} to be a mapping of names to '
                              f'tensors, got {type(obj).__name__}')
    return dict(obj)


def is_official(state: Mapping[str, torch.Tensor]) -> bool:
    """True when the key names are the official code's (visual_backbone., vl_joint_trans.)."""
    return any(k.startswith(('visual_backbone.', 'vl_joint_trans.')) for k in state)


def load_weights(model: nn.Module, path: str | pathlib.Path, config) -> str:
    """Load an official or our own checkpoint into ``model`` strictly; returns its format.

    Official: a dict with ``net`` (or a bare state dict) under official key names. Ours:
    safetensors, or a state dict / dict with ``model`` under our key names.
    """
    path = pathlib.Path(path)
    obj = read_checkpoint(path)
    if isinstance(obj, Mapping) and 'net' in obj:
        state, where = _tensor_dict(obj['net'], path, '"net"'), 'net'
    elif isinstance(obj, Mapping) and isinstance(obj.get('model'), Mapping):
        state, where = _tensor_dict(obj['model'], path, '"model"'), 'model'
    else:
        state, where = _tensor_dict(obj, path, 'the file'), 'file'
    if is_official(state):
        ours, unmatched = from_official(state, config)
        load_state_strict(model, ours, f'official checkpoint {path}', unmatched,
                          file_name=official_name(config), file_keys=len(state))
        return 'official'
    omitted = _omitted_prefixes(path)
    if omitted:
        state = _fill_pretrained(model, state, omitted, config, path)
    load_state_strict(model, state, f'checkpoint {path} ({where})')
    return 'ours'


# Top-level modules whose weights a config can load from pretrained files at build time, and
# the config field that says so: only these may be left out of a weights file.
_PRETRAINED = {'vision': 'vision_weights', 'text': 'text_weights'}


def _matches(key: str, prefixes) -> bool:
    return any(key == p or key.startswith(p + '.') for p in prefixes)


def _omitted_prefixes(path: pathlib.Path) -> list[str]:
    """The ``omitted`` metadata of one of our safetensors files ([] for other files)."""
    if path.suffix != '.safetensors':
        return []
    from safetensors import safe_open
    with safe_open(str(path), 'pt') as f:
        meta = f.metadata() or {}
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
    from safetensors.torch import save_file

    from nl_tracker_ros.config import to_dict
    meta = {'format': 'nl_tracker_ros.jointnlt'}
    if config is not None:
        meta['config'] = json.dumps(to_dict(config))
    if omit:
        meta['omitted'] = json.dumps(list(omit))
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()
             if not _matches(k, omit) or _matches(k, keep)}
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=meta)


def load_swin_weights(backbone: nn.Module, path: str) -> None:
    """ImageNet Swin weights (Microsoft or timm layout, e.g. swin_base_patch4_window7_224_22k)
    into a ``SwinBackbone``; later stages and the classifier are dropped on purpose."""
    obj = read_checkpoint(path)
    if isinstance(obj, Mapping) and 'model' in obj:
        obj = obj['model']
    state = _tensor_dict(obj, path, 'the Swin weights')
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
    load_state_strict(backbone, ours, f'Swin weights {path}')


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
    for k, v in _tensor_dict(read_checkpoint(weights), weights, 'the BERT weights').items():
        k = k[len('bert.'):] if k.startswith('bert.') else k
        if k.startswith(('cls.', 'pooler.')) or k.endswith('position_ids'):
            continue
        state[k] = v
    model = BertModel(config, add_pooling_layer=False)
    load_state_strict(model, state, f'BERT weights {weights}')
    return model

"""Reading and writing weight files: the one place that opens them and loads them strictly.

- :func:`read_file` opens safetensors, or a torch file with ``torch.load(weights_only=True)``:
  nothing from a file is imported or run. ``inert=True`` (the official JointNLT checkpoint,
  whose trainer pickled its settings beside the weights) reads the classes weights-only
  loading refuses as inert stand-ins, to be dropped with everything but the weights.
- :func:`read_tensors` is the same for files that must be a flat mapping of names to tensors.
- :func:`load_strict` loads a state dict into a module: any missing, unexpected or misshaped
  key is a CheckpointError of one line that names the keys the way the file does.
- :func:`read_metadata` / :func:`write_safetensors`: the string metadata in a safetensors
  header, where fitted files say what they fit (``recovery.fitted``).
"""
from __future__ import annotations

import json
import logging
import os
import pathlib
import pickle
from collections.abc import Callable, Mapping

import torch
from torch import nn

from nl_tracker_ros.errors import CheckpointError

log = logging.getLogger(__name__)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else ''


class _Inert:
    """Stand-in for a class a checkpoint refers to but we refuse to import."""

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


def read_file(path: str | pathlib.Path, what: str = 'weights file', inert: bool = False):
    """The object stored in ``path`` (safetensors: a name -> tensor dict), read without running
    code from it; ``what`` names the file in errors. See the module docstring for ``inert``."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(f'{what} {path}: not found')
    if path.suffix == '.safetensors':
        from safetensors.torch import load_file
        try:
            return load_file(str(path), device='cpu')
        except Exception as exc:  # any reader failure: not a usable safetensors file
            raise CheckpointError(f'{what} {path}: unreadable safetensors '
                                  f'({_first_line(exc)})') from None
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as exc:
        if not inert:
            raise CheckpointError(f'{what} {path}: cannot be read weights-only '
                                  f'({_first_line(exc)})') from None
        try:
            return _torch_load_inert(path)
        except Exception as exc2:  # still refused: name the file and what we expected
            raise CheckpointError(f'{what} {path}: cannot be read weights-only '
                                  f'({_first_line(exc2)}); expected a torch file whose "net" '
                                  f'entry is a state dict') from None
    except Exception as exc:  # zip/pickle corruption and the like
        raise CheckpointError(f'{what} {path}: unreadable, expected safetensors or a '
                              f'weights-only torch file ({type(exc).__name__}: '
                              f'{_first_line(exc)})') from None


def tensor_dict(obj, path, what: str) -> dict[str, torch.Tensor]:
    """``obj`` as a dict of name -> tensor, or a CheckpointError naming ``path`` and ``what``."""
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise CheckpointError(f'{path}: expected {what} to be a mapping of names to tensors, '
                              f'got {type(obj).__name__}')
    return dict(obj)


def read_tensors(path: str | pathlib.Path, what: str = 'weights file') -> dict[str, torch.Tensor]:
    """A flat name -> tensor mapping from ``path`` (safetensors or weights-only torch)."""
    return tensor_dict(read_file(path, what), f'{what} {path}', 'the file')


def _names(keys, limit: int = 8) -> str:
    keys = sorted(keys)
    more = f' (+{len(keys) - limit} more)' if len(keys) > limit else ''
    return '[' + ', '.join(keys[:limit]) + ']' + more


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str, *,
                target: str = 'this model', file_name: Callable[[str], str] | None = None,
                extra_unexpected=(), file_keys: int | None = None) -> None:
    """Load ``state`` into ``module``; any missing, unexpected or misshaped key ->
    CheckpointError, one line: ``{source}: does not fit {target} (N entries, the file has M):
    k missing keys [...]; k unexpected keys [...]; k shape mismatches [...]``.

    The Swin relative-position indices are derived, so their values are checked, not trusted.
    Messages name keys the way the file does: ``file_name`` maps a module key to the file's name
    for it (renamed files); ``extra_unexpected`` are file keys that had no module name, and
    ``file_keys`` is the number of keys in the file (default: those of ``state`` and the extra).
    """
    named = file_name or (lambda k: k)
    own = module.state_dict()
    missing = [named(k) for k in set(own) - set(state)]
    unexpected = [named(k) for k in set(state) - set(own)] + list(extra_unexpected)
    shapes = [f'{named(k)} {tuple(state[k].shape)} in the file vs {tuple(own[k].shape)}'
              for k in set(own) & set(state) if tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        count = len(state) + len(extra_unexpected) if file_keys is None else file_keys
        parts = [f'{len(missing)} missing keys {_names(missing)}' if missing else '',
                 f'{len(unexpected)} unexpected keys {_names(unexpected)}' if unexpected else '',
                 f'{len(shapes)} shape mismatches {_names(shapes, 4)}' if shapes else '']
        raise CheckpointError(f'{source}: does not fit {target} ({len(own)} entries, the file '
                              f'has {count}): ' + '; '.join(p for p in parts if p))
    for k, v in state.items():
        if k.endswith('relative_position_index') and not own[k].is_meta and \
                not torch.equal(v.to(own[k].device), own[k]):
            raise CheckpointError(f'{source}: {named(k)} differs from the Swin window index '
                                  f'(another window size?)')
    module.load_state_dict(state, strict=True)


def read_metadata(path: str | pathlib.Path, what: str = 'weights file') -> dict[str, str]:
    """The string metadata of a safetensors header ({} for other files or none)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(f'{what} {path}: not found')
    if path.suffix != '.safetensors':
        return {}
    from safetensors import safe_open
    try:
        with safe_open(str(path), 'pt') as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # any reader failure: not a usable safetensors file
        raise CheckpointError(f'{what} {path}: unreadable safetensors '
                              f'({_first_line(exc)})') from None


def json_entry(meta: Mapping[str, str], key: str, path, what: str):
    """The JSON value of metadata entry ``key``, or a CheckpointError naming it."""
    if key not in meta:
        raise CheckpointError(f'{what} {path}: no "{key}" in its metadata')
    try:
        return json.loads(meta[key])
    except ValueError:
        raise CheckpointError(f'{what} {path}: metadata "{key}" is not JSON: '
                              f'{meta[key][:80]!r}') from None


def write_safetensors(path: str | pathlib.Path, state: Mapping[str, torch.Tensor],
                      metadata: Mapping[str, object] | None = None) -> None:
    """Write ``state`` (moved to the CPU, made contiguous) with ``metadata``: strings as they
    are, anything else as JSON. Written to a temporary name and renamed, so a reader never
    sees half a file."""
    from safetensors.torch import save_file
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)

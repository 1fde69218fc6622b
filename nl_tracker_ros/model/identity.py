"""Which model weights a fitted file goes with: a preset and a fingerprint of its weights.

The retrieval switch and the kind classifier are fitted on one model's features (or for one
model's vocabulary), so their files record the model they belong to (``model_preset``,
``model_weights`` in the safetensors metadata), and the tracker refuses a file fitted for other
weights. The fingerprint is ``'shipped'`` for the weights that ship with the package (whatever
path they are given by), ``'random'`` for a preset run on random weights (tests), and otherwise
the sha256 of the weights file.
"""
from __future__ import annotations

import dataclasses
import hashlib
import pathlib

from nl_tracker_ros.errors import CheckpointError, ConfigError

SHIPPED = 'shipped'
RANDOM = 'random'
_HASHES: dict[tuple[str, int, int], str] = {}    # (path, size, mtime) -> sha256


def file_sha256(path: str | pathlib.Path) -> str:
    """The sha256 (hex) of a file, remembered per path, size and modification time (hashing
    the official checkpoint takes a few seconds)."""
    path = pathlib.Path(path).resolve()
    try:
        st = path.stat()
    except OSError:
        raise ConfigError(f'weights file {path}: not found') from None
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with path.open('rb') as f:
            for block in iter(lambda: f.read(1 << 22), b''):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


@dataclasses.dataclass(frozen=True)
class ModelIdentity:
    """A model preset and its weights: 'shipped', 'random', or the weights file's sha256."""

    preset: str
    weights: str

    def describe(self) -> str:
        """e.g. 'jointnlt-base weights sha256 3f2a9c01b7d4' or 'jointnlt-compact shipped
        weights' (for one-line messages)."""
        if self.weights in (SHIPPED, RANDOM):
            return f'{self.preset} {self.weights} weights'
        return f'{self.preset} weights sha256 {self.weights[:12]}'

    def fit_command(self, command: str) -> str:
        """The ``nl-tracker`` command line that fits a file for this model (in messages)."""
        given = {SHIPPED: '', RANDOM: ' --random-weights'}.get(self.weights, ' --weights FILE')
        return f'nl-tracker {command} --preset {self.preset}{given} --data DIR'

    def metadata(self) -> dict[str, str]:
        """The entries a fitted file records for this model."""
        return {'model_preset': self.preset, 'model_weights': self.weights}

    @classmethod
    def from_metadata(cls, meta: dict[str, str], path, what: str) -> 'ModelIdentity':
        """The model a fitted file at ``path`` records (CheckpointError if it records none)."""
        if 'model_preset' not in meta or 'model_weights' not in meta:
            raise CheckpointError(f'{what} {path}: its metadata does not say which model it was '
                                  f'fitted for (model_preset, model_weights); refit it with the '
                                  f'current nl-tracker')
        return cls(meta['model_preset'], meta['model_weights'])

    def require(self, fitted: 'ModelIdentity', path, what: str, hint: str) -> None:
        """Refuse, in one line naming both, a file at ``path`` fitted for another model."""
        if fitted != self:
            raise CheckpointError(f'{what} {path} was fitted for {fitted.describe()}, not for '
                                  f'the {self.describe()} in use; {hint}')


def model_identity(preset: str, weights: str | pathlib.Path = '',
                   random_weights: bool = False) -> ModelIdentity:
    """The identity of ``preset`` running ``weights`` ('' = the weights shipped for it, or
    random ones when none ship and ``random_weights`` allows them)."""
    from nl_tracker_ros.model.checkpoint import shipped_weights
    shipped = shipped_weights(preset)
    if not weights:
        if shipped is not None:
            return ModelIdentity(preset, SHIPPED)
        if random_weights:
            return ModelIdentity(preset, RANDOM)
        raise ConfigError(f'model {preset}: no weights ship with this preset; expected a '
                          f'weights file')
    digest = file_sha256(weights)
    if shipped is not None and digest == file_sha256(shipped):
        return ModelIdentity(preset, SHIPPED)
    return ModelIdentity(preset, digest)

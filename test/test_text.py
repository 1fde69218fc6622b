"""WordPiece tokenizer wrapper: fixed-length ids, masks, truncation, bad commands."""
import numpy as np
import pytest

from nl_tracker_ros.errors import ConfigError, InputError
from nl_tracker_ros.text import MAX_LEN, TextTokenizer, default_vocab_path


@pytest.fixture(scope='module')
def tok():
    return TextTokenizer()


def _vocab():
    return default_vocab_path().read_text(encoding='utf-8').splitlines()


def test_bundled_vocabulary_is_the_uncased_bert_one():
    vocab = _vocab()
    assert len(vocab) == 30522
    assert vocab[101] == '[CLS]' and vocab[102] == '[SEP]' and vocab[0] == '[PAD]'


def test_ids_wrap_word_pieces_with_cls_and_sep_and_pad_with_zero(tok):
    out = tok('Follow the person in the RED jacket')
    vocab = _vocab()
    n = out.num_tokens
    assert out.ids.shape == (MAX_LEN,) and out.mask.shape == (MAX_LEN,)
    assert out.ids.dtype == np.int64 and out.mask.dtype == np.int64
    assert out.ids[0] == vocab.index('[CLS]') and out.ids[n - 1] == vocab.index('[SEP]')
    words = [vocab[i] for i in out.ids[1:n - 1]]
    assert words == ['follow', 'the', 'person', 'in', 'the', 'red', 'jacket']  # lowercased
    assert (out.mask[:n] == 1).all() and (out.mask[n:] == 0).all() and (out.ids[n:] == 0).all()
    assert not out.truncated


def test_accents_are_stripped_and_punctuation_split(tok):
    assert tok.tokenize('Café, naïve!') == ['cafe', ',', 'naive', '!']


def test_long_commands_are_truncated_and_flagged(tok):
    out = tok('the small dog ' * 30)
    assert out.truncated and out.num_tokens == MAX_LEN
    assert out.mask.all()
    assert out.ids[-1] == tok.sep_id
    exact = tok(' '.join(['dog'] * (MAX_LEN - 2)))
    assert not exact.truncated and exact.num_tokens == MAX_LEN


def test_custom_max_len(tmp_path):
    t = TextTokenizer(max_len=8)
    out = t('a b c d e f g h i')
    assert out.ids.shape == (8,) and out.truncated
    with pytest.raises(ConfigError):
        TextTokenizer(max_len=2)
    with pytest.raises(ConfigError):
        TextTokenizer(vocab_path=tmp_path / 'missing.txt')


@pytest.mark.parametrize('bad', ['', '   ', '\n\t', '\x00\x01', 'abc\udc80def', None, 3])
def test_empty_blank_and_undecodable_commands_raise_input_error(tok, bad):
    with pytest.raises(InputError):
        tok(bad)


def test_batch_stacks_rows(tok):
    ids, mask = tok.batch(['red car', 'the man on the left'])
    assert ids.shape == (2, MAX_LEN) and mask.shape == (2, MAX_LEN)
    assert mask[0].sum() == 4 and mask[1].sum() == 7


def test_matches_the_reference_bert_tokenizer(tok):
    from transformers import BertTokenizer
    ref = BertTokenizer(str(tok.path), do_lower_case=True)
    for s in ['Follow the GIRL wearing a naïve-looking hat; 3rd one from left!!',
              'the man in a black t-shirt (left), not the dog', '汽车 on the road',
              'a zebra-striped umbrella at 12:30', 'unbelievably tiny hummingbird']:
        assert tok.tokenize(s) == ref.tokenize(s)
        ids = tok(s).ids[:tok(s).num_tokens].tolist()
        assert ids == ref.convert_tokens_to_ids(['[CLS]', *ref.tokenize(s)[:38], '[SEP]'])

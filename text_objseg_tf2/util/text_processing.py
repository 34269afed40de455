"""Referring-expression tokenisation, as the original release did it (see SPEC, "Preprocessing").

A sentence is split on runs of non-word characters, keeping the separators as tokens, so
``"rocks on left, next"`` gives ``rocks | on | left | ", " | next`` and ``", "`` maps to
``<unk>``. Faithfulness details:

* The original ran on Python 2, where ``\\W`` without ``re.UNICODE`` is ASCII-only even on
  unicode strings: every non-ASCII character is a separator. ``re.ASCII`` reproduces that
  (Python 3's default would keep ``"café"`` in one piece), and lower-casing follows Python 2's
  one-to-one mapping.
* Separator pieces are not stripped (``"right ."`` keeps ``" ."``, which is ``<unk>``); only a
  final piece equal to ``"."`` is dropped.
* An empty sentence crashed the original (``IndexError``); here it is a ``ValueError``.
"""

import os
import re

UNK_IDENTIFIER = "<unk>"
PAD_IDENTIFIER = "<pad>"
EOS_IDENTIFIER = "<eos>"

# Python 2's `\W` (no re.UNICODE flag) == [^a-zA-Z0-9_]; re.ASCII gives the same on str.
SENTENCE_SPLIT_REGEX = re.compile(r"(\W+)", re.ASCII)


def load_vocab_dict_from_file(dict_file):
    """Reads a vocabulary (one word per line, stripped) into {word: line index}.

    Like the original, a word listed twice keeps its last line index.
    """
    if not os.path.isfile(dict_file):
        raise FileNotFoundError(f"vocabulary file not found: {dict_file}")
    with open(dict_file, encoding="utf-8") as f:
        words = [line.strip() for line in f]
    vocab_dict = {word: n for n, word in enumerate(words)}
    missing = [w for w in (PAD_IDENTIFIER, UNK_IDENTIFIER) if w not in vocab_dict]
    if missing:
        raise ValueError(f"vocabulary file {dict_file} lacks {', '.join(missing)}")
    return vocab_dict


def _check_vocab(vocab_dict, *required):
    missing = [w for w in required if w not in vocab_dict]
    if missing:
        raise ValueError(f"vocabulary lacks {', '.join(missing)}")


def _py2_lower(word):
    """str.lower() as Python 2's unicode.lower() did it.

    Python 2 used the one-to-one case mapping, so U+0130 (capital I with dot) became "i"; Python
    3 gives "i" + U+0307, which is not a vocabulary word. No other character lower-cases to
    ASCII differently, and non-ASCII results are <unk> in the (ASCII) vocabulary anyway.
    """
    return word.replace("\u0130", "i").lower()


def sentence2vocab_indices(sentence, vocab_dict):
    """Maps a sentence to a list of word ids (no truncation or padding)."""
    if not isinstance(sentence, str):
        raise ValueError(f"query must be a string, got {type(sentence).__name__}")
    _check_vocab(vocab_dict, UNK_IDENTIFIER)
    pieces = SENTENCE_SPLIT_REGEX.split(sentence.strip())
    words = [_py2_lower(w) for w in pieces if w.strip()]
    if not words:
        raise ValueError(f"query is empty or blank: {sentence!r}")
    if words[-1] == ".":
        words = words[:-1]
    if not words:
        raise ValueError(f"query has no words: {sentence!r}")
    unk = vocab_dict[UNK_IDENTIFIER]
    return [vocab_dict.get(w, unk) for w in words]


def preprocess_sentence(sentence, vocab_dict, T):
    """Word ids of a sentence, cut to its first T words and left-padded with <pad> to T."""
    if int(T) < 1:
        raise ValueError(f"T must be positive, got {T}")
    _check_vocab(vocab_dict, PAD_IDENTIFIER, UNK_IDENTIFIER)
    vocab_indices = sentence2vocab_indices(sentence, vocab_dict)[:T]
    return [vocab_dict[PAD_IDENTIFIER]] * (T - len(vocab_indices)) + vocab_indices

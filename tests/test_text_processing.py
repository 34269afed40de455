"""Tokenisation against an independent character-loop re-expression of the original's rules."""

import glob
import json
import os
import shutil
import subprocess

import pytest

from text_objseg_tf2.util import text_processing as tp

ASCII_WORD = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def ref_pieces(sentence):
    """Python 2 `re.split(r'(\\W+)', s.strip())` as a character loop: runs of ASCII word
    characters and runs of everything else, in order (empty pieces omitted)."""
    s = sentence.strip()
    pieces, current, current_is_word = [], "", None
    for ch in s:
        is_word = ch in ASCII_WORD
        if current and is_word != current_is_word:
            pieces.append(current)
            current = ""
        current += ch
        current_is_word = is_word
    if current:
        pieces.append(current)
    return pieces


def ref_tokens(sentence):
    # Python 2's unicode.lower(): U+0130 -> "i" (one-to-one mapping).
    words = [p.replace("\u0130", "i").lower() for p in ref_pieces(sentence) if p.strip() != ""]
    if words and words[-1] == ".":
        words = words[:-1]
    return words


def ref_ids(sentence, vocab, T):
    ids = [vocab[w] if w in vocab else vocab["<unk>"] for w in ref_tokens(sentence)]
    ids = ids[:T]
    return [vocab["<pad>"]] * (T - len(ids)) + ids


SMALL_VOCAB_WORDS = ["<pad>", "<go>", "<eos>", "<unk>", "man", "left", "right", ".", "the",
                     "i", "caf", "blue_sky", ",", "k"]


@pytest.fixture()
def small_vocab_file(tmp_path):
    path = tmp_path / "vocab.txt"
    # Surrounding blanks are stripped, as the original did.
    path.write_text("\n".join(["  " + w + " \t" for w in SMALL_VOCAB_WORDS]) + "\n")
    return path


@pytest.fixture()
def vocab(small_vocab_file):
    return tp.load_vocab_dict_from_file(str(small_vocab_file))


def test_load_vocab_strips_and_indexes(vocab):
    assert vocab == {w: n for n, w in enumerate(SMALL_VOCAB_WORDS)}


def test_load_vocab_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        tp.load_vocab_dict_from_file(str(tmp_path / "nope.txt"))


def test_load_vocab_without_special_words(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("<pad>\nman\n")
    with pytest.raises(ValueError, match="<unk>"):
        tp.load_vocab_dict_from_file(str(path))


@pytest.mark.parametrize(
    "sentence, tokens",
    [
        ("man on the left.", ["man", "on", "the", "left"]),  # blank pieces dropped
        ("right .", ["right", " ."]),  # the dot piece is " .", not ".": kept
        ("left, right", ["left", ", ", "right"]),  # ", " is one token (-> <unk>)
        ("LEFT Man", ["left", "man"]),
        ("  man  ", ["man"]),
        ("man..", ["man", ".."]),
        ("blue_sky", ["blue_sky"]),  # "_" is a word character
        ("café", ["caf", "é"]),  # Python 2: non-ASCII letters are \W
        ("rock™s", ["rock", "™", "s"]),
        ("x\u0130y", ["x", "i", "y"]),  # Python 2 lower-cased U+0130 to "i"
        ("\u0130 x", ["i ", "x"]),
        ("\u212a", ["k"]),  # Kelvin sign
    ],
)
def test_tokens_pinned(sentence, tokens, vocab):
    assert ref_tokens(sentence) == tokens
    unk = vocab["<unk>"]
    expected = [vocab.get(t, unk) for t in tokens]
    assert tp.sentence2vocab_indices(sentence, vocab) == expected


def test_spaces_are_tokens_unless_blank(vocab):
    # " " pieces are blank after strip and dropped; the ids carry no space token.
    assert tp.sentence2vocab_indices("man on the left.", vocab) == [
        vocab["man"], vocab["<unk>"], vocab["the"], vocab["left"]]


def test_preprocess_pads_left_and_truncates(vocab):
    assert tp.preprocess_sentence("the man", vocab, 5) == [0, 0, 0, vocab["the"], vocab["man"]]
    long_sentence = " ".join(["man", "left"] * 15)  # 30 words
    ids = tp.preprocess_sentence(long_sentence, vocab, 20)
    assert ids == [vocab["man"], vocab["left"]] * 10  # keeps the FIRST 20
    assert ids == ref_ids(long_sentence, vocab, 20)


def test_only_unknown_words_is_valid(vocab):
    assert tp.preprocess_sentence("zebra giraffe", vocab, 4) == [0, 0, 3, 3]


@pytest.mark.parametrize("sentence", ["", "   ", "\t\n", "\u00a0"])
def test_empty_query_is_an_error(sentence, vocab):
    with pytest.raises(ValueError, match="empty"):
        tp.preprocess_sentence(sentence, vocab, 20)


def test_query_of_only_a_dot_is_an_error(vocab):
    with pytest.raises(ValueError, match="no words"):
        tp.preprocess_sentence(" . ", vocab, 20)


def test_vocab_without_pad_is_an_error():
    with pytest.raises(ValueError, match="<pad>"):
        tp.preprocess_sentence("man", {"<unk>": 0, "man": 1}, 20)


def test_every_referit_query(referit_data_dir):
    vocab = tp.load_vocab_dict_from_file(str(referit_data_dir / "vocabulary_referit.txt"))
    with open(referit_data_dir / "referit_query_all.json") as f:
        queries = json.load(f)
    count = n_unk_comma = n_non_ascii = 0
    for descriptions in queries.values():
        for sentence in descriptions:
            assert tp.preprocess_sentence(sentence, vocab, 20) == ref_ids(sentence, vocab, 20), \
                sentence
            count += 1
            n_unk_comma += ref_tokens(sentence).count(", ")
            n_non_ascii += any(ord(c) > 127 for c in sentence)
    assert count == 120081
    assert n_unk_comma == 4671  # SPEC: ", " is a token of its own 4,671 times
    assert n_non_ascii == 76


def _find_python2():
    candidates = [shutil.which("python2.7"), shutil.which("python2")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/2.7*/bin/python")))
    for exe in candidates:
        if exe and subprocess.run([exe, "-c", "import sys; assert sys.version_info[0] == 2"],
                                  capture_output=True).returncode == 0:
            return exe
    return None


PY2_SCRIPT = r"""
# -*- coding: utf-8 -*-
import json, re, sys
split = re.compile(r'(\W+)')
out = []
for s in json.loads(sys.stdin.read()):
    words = [w.lower() for w in split.split(s.strip()) if len(w.strip()) > 0]
    if words[-1] == u'.':
        words = words[:-1]
    out.append(words)
sys.stdout.write(json.dumps(out))
"""


def test_python2_semantics_when_available(vocab):
    """Pins that the rules above ARE Python 2's `\\W` and lower() (skipped without python2)."""
    exe = _find_python2()
    if exe is None:
        pytest.skip("no Python 2 interpreter")
    sentences = ["café naïve", "Über rock™s", "right .", "LEFT, rock.", "\u0130stanbul \u212a",
                 "a\u00a0b", "x\u2003 y", "ΣΑΣ end.", "blue_sky"]
    result = subprocess.run([exe, "-c", PY2_SCRIPT], input=json.dumps(sentences),
                            capture_output=True, text=True, check=True)
    py2_tokens = json.loads(result.stdout)
    mine = [ref_tokens(s) for s in sentences]
    # Only the final-sigma rule of Python 3's lower() differs, on a non-ASCII (<unk>) piece.
    assert mine[:7] + mine[8:] == py2_tokens[:7] + py2_tokens[8:]
    assert (mine[7], py2_tokens[7]) == (["σας ", "end"], ["σασ ", "end"])
    unk = vocab["<unk>"]
    # The ids agree even where lower() differs.
    for s, tokens in zip(sentences, py2_tokens, strict=True):
        assert tp.sentence2vocab_indices(s, vocab) == [vocab.get(t, unk) for t in tokens]

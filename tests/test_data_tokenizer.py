"""Shared byte-level BPE: special ids, vocabulary rounding, exact detokenization."""

from __future__ import annotations

import random
import unicodedata

import numpy as np
import pytest
from tokenizers import pre_tokenizers

from data_prep import BOS_ID, EOS_ID, PAD_ID, UNK_ID, DataError, load_tokenizer
from data_prep.tokenizer import MAX_PIECES, PieceEncoder, encode_ids, train_tokenizer

CORPUS = [
    "Guten Morgen, wie geht es dir?",
    "Die Straße ist heute sehr schön.",
    "Good morning, how are you?",
    "The street is very beautiful today.",
    "Ich möchte drei Äpfel und einen Kaffee, bitte!",
]

ROUND_TRIP = [
    "Grüße aus Köln: Äpfel, Öl, Übermut und Fußgängerüberweg.",
    "Er sagte: „Das kostet 3,50 €“ – wirklich?!",
    "two  spaces,\ttab and   three",
    "emoji 🙂, CJK 漢字, math ∑ and a literal </s> <pad>",
    "ÀÉÎÕÜ ñ ç ø å æ œ",
]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    tok = train_tokenizer(iter([CORPUS * 20]), vocab_size=300, length=100)
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return load_tokenizer(path.parent)


def test_special_ids_and_size_multiple_of_64(tok):
    assert [tok.token_to_id(t) for t in ["<pad>", "<s>", "</s>", "<unk>"]] == [
        PAD_ID, BOS_ID, EOS_ID, UNK_ID,
    ]  # fmt: skip
    assert tok.get_vocab_size() == 320


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_decode_encode_is_identity_on_clean_text(tok, text):
    ids = tok.encode(text).ids
    assert UNK_ID not in ids and BOS_ID not in ids and EOS_ID not in ids
    assert tok.decode(ids) == text


def test_nfd_input_decodes_to_nfc(tok):
    nfd = unicodedata.normalize("NFD", "Müßiggang")
    assert tok.decode(tok.encode(nfd).ids) == "Müßiggang"


def test_missing_tokenizer_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_tokenizer(tmp_path)


def test_encode_ids_equals_one_encode_per_sentence():
    # newlines and whitespace runs in training make merges such as "\n " exist, so that joined
    # encoding must notice them and fall back
    tok = train_tokenizer(iter([CORPUS * 20 + ["a\n  b\n\n\nc  \n d"] * 50]), 400, length=101)
    tricky = ROUND_TRIP + [" lead", "trail ", "", "", "x", "  two", "'s it", "3,50", "\r\x85"]
    rng = random.Random(0)
    fuzz = ["".join(rng.choices(" \t\xa0\rab'.1ü", k=rng.randrange(6))) for _ in range(300)]
    clean = [s.strip() for s in fuzz if s.strip()]  # what prepare encodes: joined, no fallback
    for sentences in (CORPUS + ROUND_TRIP, tricky, tricky + ["new\nline"], [], fuzz, clean):
        flat, lens = encode_ids(tok, sentences, np.uint16)
        expected = [tok.encode(s, add_special_tokens=False).ids for s in sentences]
        assert lens.dtype == np.int64 and lens.tolist() == list(map(len, expected))
        assert flat.tolist() == [i for ids in expected for i in ids]


def test_no_whitespace_of_the_pre_tokenizer_is_missed_by_python():
    # PieceEncoder relies on it: a piece without Python whitespace has none for the pre-tokenizer.
    # After a space, a whitespace character leaves the space alone as a pre-token; any other
    # character takes the space. Unicode's whitespace is all in the BMP.
    pre = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    missed = [
        hex(i)
        for i in range(0x10000)
        if not (0xD800 <= i < 0xE000 or chr(i).isspace())
        and pre.pre_tokenize_str(" " + chr(i) + "x")[0][1] == (0, 1)
    ]
    assert missed == []


@pytest.mark.parametrize("max_pieces", [MAX_PIECES, 5])
def test_piece_encoder_equals_one_encode_per_sentence(max_pieces):
    # max_pieces 5: the cache fills in the first batch, later batches encode their new pieces anew.
    # Runs of spaces in training give merges such as "  ", which a run split at each space lacks
    runs = ["a\n  b\n\n\nc  \n d", "x   y    z  ", "p\t  q \t\tr"]
    tok = train_tokenizer(iter([CORPUS * 20 + runs * 50]), 400, length=250)
    tok.normalizer = None  # as in prepare: the text is NFC already
    encode = PieceEncoder(tok, np.uint16, max_pieces)
    rng = random.Random(1)
    spaces = " \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u1680\u2009\u2028\u3000"
    fuzz = ["".join(rng.choices(" a'.1ü" + spaces, k=rng.randrange(8))) for _ in range(400)]
    words = [w for s in CORPUS + ROUND_TRIP for w in s.split()] + ["'s", "3,50", "(x)", "é🙂"]
    plain = [" ".join(rng.choices(words, k=rng.randrange(1, 12))) for _ in range(400)]
    tricky = ROUND_TRIP + [
        " lead",
        "trail ",
        "",
        "x",
        "  two",
        "a  ",
        "a\t \tb",
        "x a\t \tb",
        "'s it",
        "\r\x85",
    ]
    for sentences in (CORPUS, plain, tricky, [], fuzz, plain[::-1] + fuzz, [""], ["", "a b"]):
        flat, lens = encode(sentences)
        expected = [tok.encode(s, add_special_tokens=False).ids for s in sentences]
        assert lens.dtype == np.int64 and lens.tolist() == list(map(len, expected))
        assert flat.dtype == np.uint16 and flat.tolist() == [i for ids in expected for i in ids]
    assert len(encode.lens) <= max_pieces and len(encode.ids) == encode.lens.sum()

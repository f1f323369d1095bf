"""Shared byte-level BPE: special ids, vocabulary rounding, exact detokenization."""

from __future__ import annotations

import unicodedata

import pytest

from data_prep import BOS_ID, EOS_ID, PAD_ID, UNK_ID, DataError, load_tokenizer
from data_prep.tokenizer import train_tokenizer

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

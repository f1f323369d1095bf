"""One byte-level BPE shared by both languages (Hugging Face `tokenizers`).

NFC normalizer + ByteLevel pre-tokenizer/decoder without a prefix space: decode(encode(s)) == s
for every NFC string (whitespace runs, umlauts, emoji included), and no input is ever <unk>.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import chain, repeat
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from data_prep.sources import DataError

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]  # ids 0, 1, 2, 3
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)
GROUP = 64  # sentences per text in encode_ids
MULTIPLE = 64  # the vocabulary is padded to a multiple of this (fast embedding matmuls)
MAX_PIECES = 1_000_000  # pieces a PieceEncoder keeps (~180 bytes each, measured)
# Python's \s is a superset of the \s of the byte-level pre-tokenizer's regex (it adds
# \x1c-\x1f): a piece without it holds no whitespace for the pre-tokenizer either
WHITESPACE = re.compile(r"\s")


def round_vocab(size: int) -> int:
    return -(-size // MULTIPLE) * MULTIPLE


def train_tokenizer(sentences: Iterator[list[str]], vocab_size: int, length: int) -> Tokenizer:
    """Train the shared BPE on batches of NFC sentences; the vocabulary is filled up with unused
    `<extra_i>` tokens to exactly round_vocab(vocab_size) when the corpus runs out of merges."""
    target = round_vocab(vocab_size)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=target,
        min_frequency=2,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(sentences, trainer, length=length)  # NFC already: no normalizer yet
    tok.normalizer = normalizers.NFC()
    missing = target - tok.get_vocab_size()
    tok.add_special_tokens([f"<extra_{i}>" for i in range(missing)])
    assert [tok.token_to_id(s) for s in SPECIALS] == [PAD_ID, BOS_ID, EOS_ID, UNK_ID]
    tok.encode_special_tokens = True
    return tok


def never_emitted(tok: Tokenizer) -> list[int]:
    """Ids no translation may contain: every special token but eos (pad, bos, unk, and the
    `<extra_i>` fillers of a vocabulary that a small corpus could not fill with merges)."""
    added = tok.get_added_tokens_decoder()
    return sorted(i for i, t in added.items() if t.special and i != EOS_ID)


def load_tokenizer(source: str | Path | bytes) -> Tokenizer:
    """tokenizer.json (or a directory holding one, or the file's bytes). Text such as "</s>" in
    the input is encoded as plain text, never as a special token; encoding adds no bos/eos."""
    if isinstance(source, bytes):
        tok = Tokenizer.from_str(source.decode("utf-8"))
    else:
        tok = Tokenizer.from_file(str(tokenizer_file(source)))
    tok.encode_special_tokens = True  # not stored in tokenizer.json
    return tok


def tokenizer_file(path_or_dir: str | Path) -> Path:
    """The tokenizer.json that `path_or_dir` is or holds; a DataError if there is none."""
    path = Path(path_or_dir)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise DataError(f"tokenizer '{path}' does not exist; run python -m data_prep first")
    return path


def encode_ids(tok: Tokenizer, sentences: list[str], dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Encode a batch on all cores -> (flat ids (T,), lengths (N,) int64), exactly as one
    `encode` per sentence, but GROUP sentences per text joined by "\n" (~35% less CPU: the cost
    per Encoding dominates). The byte-level pre-tokenizer splits at each newline, so its token
    marks sentence ends; sentences holding a newline, or a newline merged with neighbouring
    whitespace (the count of newline tokens tells), fall back to one text per sentence."""
    newline = tok.encode("\n", add_special_tokens=False).ids
    if len(newline) == 1 and not any("\n" in s for s in sentences):
        texts = ["\n".join(sentences[i : i + GROUP]) for i in range(0, len(sentences), GROUP)]
        encodings = tok.encode_batch_fast(texts, add_special_tokens=False)
        flat = np.fromiter(chain.from_iterable(e.ids + newline for e in encodings), dtype=dtype)
        ends = np.flatnonzero(flat == newline[0])
        if len(ends) == len(sentences):
            return np.delete(flat, ends), np.diff(ends, prepend=-1) - 1
    ids = [e.ids for e in tok.encode_batch_fast(sentences, add_special_tokens=False)]
    lens = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(chain.from_iterable(ids), dtype=dtype, count=int(lens.sum()))
    return flat, lens


class PieceEncoder:
    """encode_ids for a stream of batches, with a cache of the pieces between single spaces.

    The byte-level pre-tokenizer never lets a pre-token span a single space between two
    non-space characters: such a space starts the next pre-token (" word", " 3,50", " (").
    So a sentence whose only whitespace is single spaces between words encodes as the
    concatenation of its space-split pieces, each encoded alone: the first one as it is, the
    others with their space. Each distinct piece goes through `tokenizers` once and is then
    looked up: 400k sentences took 3.9 s instead of 13.9-17.5 s (docs/benchmarks.md). The first
    `max_pieces` distinct pieces are kept; once the cache is full, a batch's new pieces are
    encoded for that batch only.
    A sentence with a piece that breaks the rule (one holding other whitespace such as a tab, a
    no-break space or a newline; an empty one after the first, from a run of spaces or a trailing
    space) goes through encode_ids whole.
    """

    def __init__(self, tok: Tokenizer, dtype: type, max_pieces: int = MAX_PIECES) -> None:
        self.tok, self.dtype, self.max_pieces = tok, dtype, max_pieces
        self.index: tuple[dict[str, int], dict[str, int]] = ({}, {})  # first piece, later ones
        self.ids = np.zeros(0, dtype)  # piece i is ids[starts[i]:starts[i] + lens[i]]
        self.starts = np.zeros(0, np.int64)
        self.lens = np.zeros(0, np.int64)
        self.odd = np.zeros(0, bool)  # piece i breaks the rule

    def __call__(self, sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if not sentences:
            return np.zeros(0, self.dtype), np.zeros(0, np.int64)
        words = " ".join(sentences).split(" ")
        counts = np.fromiter(map(str.count, sentences, repeat(" ")), np.int64, len(sentences))
        firsts = np.cumsum(counts + 1) - counts - 1
        first_words = [words[i] for i in firsts.tolist()]
        # each word's row in the cache (-1: not there yet); a sentence's first word has no space
        rows = np.fromiter(map(self.index[1].get, words, repeat(-1)), np.int64, len(words))
        rows[firsts] = np.fromiter(map(self.index[0].get, first_words, repeat(-1)), np.int64)
        cached, new = len(self.lens), ([], [])
        if len(miss := np.flatnonzero(rows < 0)):
            is_first = np.zeros(len(words), bool)
            is_first[firsts] = True
            kinds = miss[is_first[miss]].tolist(), miss[~is_first[miss]].tolist()
            new = tuple(sorted({words[i] for i in kind}) for kind in kinds)
            self._add(new)
            for index, kind in zip(self.index, kinds, strict=True):
                rows[kind] = [index[words[i]] for i in kind]
        word_lens = self.lens[rows]  # every word's ids, one after another, make the sentences
        flat = self.ids[_segments(self.starts[rows], word_lens)]
        lens = np.add.reduceat(word_lens, firsts)
        odd = np.flatnonzero(np.logical_or.reduceat(self.odd[rows], firsts))
        if len(self.lens) > self.max_pieces:
            self._forget(new, cached)
        if not len(odd):
            return flat, lens
        # re-encode the odd sentences whole and put their ids in place of the pieces'
        odd_flat, odd_lens = encode_ids(self.tok, [sentences[i] for i in odd.tolist()], self.dtype)
        starts = np.cumsum(lens) - lens  # in flat + odd_flat
        starts[odd], lens[odd] = len(flat) + np.cumsum(odd_lens) - odd_lens, odd_lens
        return np.concatenate([flat, odd_flat])[_segments(starts, lens)], lens

    def _add(self, new: tuple[list[str], list[str]]) -> None:
        firsts, laters = new
        flat, lens = encode_ids(self.tok, firsts + [" " + w for w in laters], self.dtype)
        row = len(self.lens)
        self.index[0].update({piece: i for i, piece in enumerate(firsts, row)})
        self.index[1].update({piece: i for i, piece in enumerate(laters, row + len(firsts))})
        odd = [WHITESPACE.search(w) is not None for w in firsts]
        odd += [not w or WHITESPACE.search(w) is not None for w in laters]
        self.starts = np.concatenate([self.starts, len(self.ids) + np.cumsum(lens) - lens])
        self.lens = np.concatenate([self.lens, lens])
        self.ids = np.concatenate([self.ids, flat])
        self.odd = np.concatenate([self.odd, np.array(odd, bool)])

    def _forget(self, new: tuple[list[str], list[str]], rows: int) -> None:
        """Drop the pieces added after the first `rows` (those of the batch just encoded)."""
        for index, pieces in zip(self.index, new, strict=True):
            for piece in pieces:
                del index[piece]
        self.ids = self.ids[: self.starts[rows]]
        self.starts, self.lens, self.odd = self.starts[:rows], self.lens[:rows], self.odd[:rows]


def _segments(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Indices that gather the segments [starts[i], starts[i] + lens[i]) one after another."""
    ends = np.cumsum(lens)
    return np.arange(ends[-1] if len(ends) else 0) + np.repeat(starts - (ends - lens), lens)

"""Reading raw corpora: local files (gzip, CRLF, BOM, bad UTF-8, alignment), wmt14 offline."""

from __future__ import annotations

import gzip

import pytest

from data_prep import DataError, sources
from data_prep.sources import Stats, open_split, read_lines
from translate.config import DataConfig


def local_cfg(tmp_path, **kw) -> DataConfig:
    return DataConfig(source="local", train=str(tmp_path / "train"), valid=str(tmp_path / "valid"),
                      test=str(tmp_path / "test"), dir=str(tmp_path / "out"), **kw)  # fmt: skip


def write(tmp_path, split, de: bytes, en: bytes) -> None:
    (tmp_path / f"{split}.de").write_bytes(de)
    (tmp_path / f"{split}.en").write_bytes(en)


def read_all(cfg, split="train"):
    n, chunks = open_split(cfg, split, Stats())
    src, tgt = [], []
    for s, t in chunks:
        src += s
        tgt += t
    return n, src, tgt


def test_crlf_bom_and_missing_final_newline(tmp_path):
    write(
        tmp_path,
        "train",
        b"\xef\xbb\xbfHallo Welt\r\nGuten Morgen\r\nTsch\xc3\xbcss",
        b"Hello world\nGood morning\nBye\n",
    )
    n, src, tgt = read_all(local_cfg(tmp_path))
    assert n == 3
    assert src == ["Hallo Welt", "Guten Morgen", "Tschüss"]
    assert tgt == ["Hello world", "Good morning", "Bye"]


def test_gzip_input(tmp_path):
    (tmp_path / "train.de.gz").write_bytes(gzip.compress("Straße\nÄpfel\n".encode()))
    (tmp_path / "train.en").write_text("street\napples\n", encoding="utf-8")
    assert read_all(local_cfg(tmp_path))[1] == ["Straße", "Äpfel"]


@pytest.mark.parametrize("damage", ["cut_short", "not_gzip"])
def test_a_damaged_gzip_file_is_a_one_line_data_error(tmp_path, damage):
    data = gzip.compress(("Straße\n" * 5000).encode())
    good = data[: len(data) // 2] if damage == "cut_short" else b"Strasse\n" * 5000
    (tmp_path / "train.de.gz").write_bytes(good)
    (tmp_path / "train.en").write_text("street\n" * 5000, encoding="utf-8")
    with pytest.raises(DataError, match="train.de.gz' is not a complete gzip file") as e:
        read_all(local_cfg(tmp_path))
    assert "\n" not in str(e.value)


def test_a_file_holding_only_a_bom_has_no_lines(tmp_path):
    write(tmp_path, "train", b"\xef\xbb\xbf", b"")
    assert read_all(local_cfg(tmp_path)) == (0, [], [])
    write(tmp_path, "train", b"\xef\xbb\xbf", b"\n")
    with pytest.raises(DataError, match="has 0 lines but .* has 1"):
        read_all(local_cfg(tmp_path))


def test_misaligned_files_name_both_counts(tmp_path):
    write(tmp_path, "train", b"a\nb\nc\n", b"a\nb\n")
    with pytest.raises(DataError, match=r"has 3 lines but .* has 2") as e:
        read_all(local_cfg(tmp_path))
    assert "\n" not in str(e.value)


def test_missing_file_names_the_path(tmp_path):
    write(tmp_path, "train", b"a\n", b"a\n")
    with pytest.raises(DataError, match="valid.de"):
        read_all(local_cfg(tmp_path), "valid")


def test_invalid_utf8_error_names_file_and_line(tmp_path):
    write(tmp_path, "train", b"gut\nschl\xff\xfecht\n", b"good\nbad\n")
    with pytest.raises(DataError, match=r"train\.de:2: invalid UTF-8"):
        read_all(local_cfg(tmp_path))


def test_invalid_utf8_replace_is_counted(tmp_path):
    path = tmp_path / "x.de"
    path.write_bytes(b"ok\nschl\xffcht\n\xfe\n")
    stats = Stats()
    blocks = list(read_lines(path, "replace", stats, size=2))
    assert blocks == [["ok", "schl\ufffdcht"], ["\ufffd"]]
    assert stats.replaced_utf8 == 2


def test_invalid_utf8_line_number_counts_earlier_blocks(tmp_path):
    path = tmp_path / "x.de"
    path.write_bytes(b"\xef\xbb\xbfa\r\nb\r\nc\nd\xff\n")
    with pytest.raises(DataError, match=r"x\.de:4: invalid UTF-8 \(byte 0xff at column 2\)"):
        list(read_lines(path, "error", Stats(), size=3))
    assert next(read_lines(path, "error", Stats(), size=3)) == ["a", "b", "c"]


def test_line_separators_inside_lines_do_not_split(tmp_path):
    write(tmp_path, "train", "a\u2028b\x85c\rd\n".encode(), b"x\n")
    assert read_all(local_cfg(tmp_path))[1] == ["a\u2028b\x85c\rd"]


def test_wmt14_offline_is_a_one_line_data_error(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'wmt14' on the Hub (LocalEntryNotFoundError)\nmore")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setattr(sources, "hub_reachable", lambda: True)  # the hub fails after resolving
    with pytest.raises(DataError) as e:
        open_split(DataConfig(source="wmt14"), "train", Stats())
    message = str(e.value)
    assert "\n" not in message and "wmt14" in message and "data.source=local" in message


def test_wmt14_full_disk_in_the_cache_says_so(monkeypatch):
    """A full disk while `datasets` writes the cache is named as such, not as a hub failure
    (`datasets` raises DatasetGenerationError from the OSError, whose text it drops)."""
    import errno

    import datasets
    from datasets.exceptions import DatasetGenerationError

    def full(*args, **kwargs):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as e:
            raise DatasetGenerationError("An error occurred while generating the dataset") from e

    monkeypatch.setattr(datasets, "load_dataset", full)
    monkeypatch.setattr(sources, "hub_reachable", lambda: True)
    with pytest.raises(DataError, match="no space left on the disk of the Hugging Face cache") as e:
        open_split(DataConfig(source="wmt14"), "valid", Stats())
    assert "\n" not in str(e.value) and "HF_HOME" in str(e.value)
    assert "without hub access" not in str(e.value)


def test_wmt14_unresolvable_hub_goes_offline_at_once(monkeypatch):
    """No host name resolution: offline mode before load_dataset (no 5 retries), one line."""
    import socket

    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    def load(*args, **kwargs):
        assert huggingface_hub.constants.HF_HUB_OFFLINE and datasets.config.HF_HUB_OFFLINE
        raise ConnectionError("Couldn't reach 'wmt14' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(datasets, "load_dataset", load)
    with pytest.raises(DataError, match="does not resolve") as e:
        open_split(DataConfig(source="wmt14"), "train", Stats())
    assert "\n" not in str(e.value)


def test_wmt14_reads_the_hub_layout_in_arrow_chunks(monkeypatch):
    """The hub's wmt/wmt14 de-en rows ({"translation": {"de": ..., "en": ...}}) read as pairs,
    split names mapped (valid -> validation), without a network."""
    import datasets

    def rows(split: str, n: int) -> datasets.Dataset:
        pairs = [{"de": f"{split} satz {i}", "en": f"{split} sentence {i}"} for i in range(n)]
        return datasets.Dataset.from_dict({"translation": pairs})

    hub = datasets.DatasetDict(
        train=rows("train", 5), validation=rows("validation", 2), test=rows("test", 3)
    )
    asked = []

    def load(*args, **kwargs):
        asked.append(args)
        return hub

    monkeypatch.setattr(datasets, "load_dataset", load)
    monkeypatch.setattr(sources, "hub_reachable", lambda: True)
    monkeypatch.setattr(sources, "CHUNK", 2)
    n, chunks = open_split(DataConfig(source="wmt14"), "valid", Stats())
    assert n == 2 and list(chunks) == [
        (
            ["validation satz 0", "validation satz 1"],
            ["validation sentence 0", "validation sentence 1"],
        )
    ]
    n, chunks = open_split(DataConfig(source="wmt14"), "train", Stats())
    chunks = list(chunks)
    assert n == 5 and [len(s) for s, _ in chunks] == [2, 2, 1]  # in chunks of CHUNK rows
    assert chunks[2] == (["train satz 4"], ["train sentence 4"])
    assert asked[0] == ("wmt/wmt14", "de-en")

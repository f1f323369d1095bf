"""Export a post-LN checkpoint to other runtimes: `translate export --checkpoint DIR --to hf OUT`.

hf: a transformers `MarianMTModel` directory (config.json, model.safetensors, tokenizer files). Our
model is built Marian-compatible (same parameter names under `model.`, one tied `shared` matrix,
Marian's sinusoid layout, sqrt(d)-scaled embeddings, ReLU, LayerNorm eps 1e-5, no final LayerNorm),
so the logits are the same. The tokenizer is our tokenizer.json as a PreTrainedTokenizerFast that
appends </s> to each source like Marian's (decode with skip_special_tokens=True).

ctranslate2: the hf directory converted for `ctranslate2.Translator`. CTranslate2's stock Marian
loader (`TransformersConverter`) assumes OPUS-MT quirks that our model does not have: the decoder
starts from a zero embedding and the last vocabulary row is a `<pad>` that it drops. We start from
<s> (id 1) and pad is id 0, so the stock converter fails ("Source vocabulary 0 has size V but the
model expected a vocabulary of size V-1"); we convert with its Bart loader instead (the same
layers, post-LN, no embedding LayerNorm). The output directory holds the exported tokenizer.json:
with `tok = Tokenizer.from_file(...)` and `tok.encode_special_tokens = True` (so that "</s>" in a
text stays text, as in `translate`), `tok.encode(text).tokens` (ending in </s>) is what
`translate_batch` takes.

Both decode as our search does, except where a hypothesis reaches the length limit: they give its
forced </s> probability 1, ours its real probability.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from data_prep import BOS_ID, EOS_ID, PAD_ID, never_emitted
from data_prep.clean import clean_line_normalizer
from translate.checkpoint import atomic_dir, load_checkpoint_config, load_model
from translate.model import Transformer
from translate.search import NEVER_EMITTED

PRE_NORM = (
    "only post-LN models can be exported (model.pre_norm is true); MarianMTModel has no "
    "pre-norm variant"
)


# What export_hf and hf_to_ctranslate2 write: an OUT holding nothing else is an earlier export,
# which may be replaced; any other file (a checkpoint's, a run's) stops the export.
EXPORT_FILES = {
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "model.bin",
    "shared_vocabulary.json",
    "shared_vocabulary.txt",
}


class ExportError(ValueError):
    """A checkpoint or environment that cannot be exported; the message says why."""


def check_out(ckpt_dir: str | Path, out_dir: str | Path) -> None:
    """Refuse an OUT whose replacement would destroy anything but an earlier export."""
    out, ckpt = Path(out_dir).resolve(), Path(ckpt_dir).resolve()
    if out.exists() and not out.is_dir():
        raise ExportError(f"OUT '{out_dir}' is a file; give a directory to write the export to")
    if out == ckpt or out in ckpt.parents or ckpt in out.parents:
        raise ExportError(
            f"OUT '{out_dir}' is or holds the checkpoint '{ckpt_dir}' (or lies inside it); "
            "give a directory of its own"
        )
    entries = out.iterdir() if out.is_dir() else []
    others = sorted(p.name for p in entries if p.name not in EXPORT_FILES or p.is_dir())
    if others:
        raise ExportError(
            f"OUT '{out_dir}' holds files an export does not write ({', '.join(others[:3])}), "
            "which it would delete; give a new or empty directory"
        )


def _require(package: str):
    """Import an optional package, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError:
        raise ExportError(
            f"exporting needs the optional package '{package}'; install it with "
            "`pip install -e .[bench]`"
        ) from None


def marian_config(model: Transformer):
    """A transformers MarianConfig describing exactly our architecture and special tokens."""
    transformers = _require("transformers")
    c = model.cfg
    return transformers.MarianConfig(
        vocab_size=model.vocab_size,
        decoder_vocab_size=model.vocab_size,
        d_model=c.d_model,
        encoder_layers=c.encoder_layers,
        decoder_layers=c.decoder_layers,
        encoder_attention_heads=c.n_heads,
        decoder_attention_heads=c.n_heads,
        encoder_ffn_dim=c.d_ff,
        decoder_ffn_dim=c.d_ff,
        dropout=c.dropout,
        attention_dropout=c.attn_dropout,
        activation_dropout=c.activation_dropout,
        activation_function="relu",
        max_position_embeddings=c.max_positions,
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True,
        pad_token_id=PAD_ID,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        decoder_start_token_id=BOS_ID,
        forced_eos_token_id=EOS_ID,  # only </s> at the length limit, where it scores 0 (ours:
        # its log-prob), so a beam cut at the limit can rank otherwise than ours
    )


def to_marian(model: Transformer, never: Sequence[int] = NEVER_EMITTED):
    """Our model (post-LN) -> an equivalent transformers MarianMTModel in eval mode, which never
    generates the ids `never` (data_prep.never_emitted: every special token but eos)."""
    if model.cfg.pre_norm:
        raise ExportError(PRE_NORM)
    transformers = _require("transformers")
    marian = transformers.MarianMTModel(marian_config(model)).eval()
    ours = {f"model.{k}": v for k, v in model.state_dict().items()}
    shared = ours["model.shared.weight"]
    for name in ("encoder.embed_tokens", "decoder.embed_tokens"):
        ours[f"model.{name}.weight"] = shared
    ours["lm_head.weight"] = shared
    ours["final_logits_bias"] = torch.zeros(1, model.vocab_size)
    for side in ("encoder", "decoder"):  # the same table Marian computes for itself
        ours[f"model.{side}.embed_positions.weight"] = model.positions
    missing, unexpected = marian.load_state_dict(ours, strict=False)
    if missing or unexpected:
        raise ExportError(f"weights do not map onto MarianMTModel: {missing or unexpected}")
    marian.generation_config.update(
        max_length=model.cfg.max_positions,
        num_beams=4,
        bad_words_ids=[[i] for i in never],  # as in translate.search
    )
    return marian


def hf_tokenizer(tokenizer_file: str | Path, max_positions: int):
    """Our tokenizer.json as a PreTrainedTokenizerFast that cleans text as `translate` does and
    appends </s> to every source; text such as "</s>" in it stays text. With `truncation=True`
    a source keeps at most `max_positions` tokens (the model's position table), </s> included."""
    transformers = _require("transformers")
    from tokenizers import Tokenizer, processors

    tok = Tokenizer.from_file(str(tokenizer_file))
    tok.normalizer = clean_line_normalizer()
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A $B </s>", special_tokens=[("</s>", EOS_ID)]
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        split_special_tokens=True,
        model_max_length=max_positions,
    )


def export_hf(ckpt_dir: str | Path, out_dir: str | Path) -> Path:
    """Write checkpoint `ckpt_dir` as a MarianMTModel directory `out_dir` (model + tokenizer)."""
    model, _, tokenizer = load_model(ckpt_dir)
    tokenizer_file = Path(ckpt_dir) / "tokenizer.json"
    marian = to_marian(model, never_emitted(tokenizer))
    with atomic_dir(out_dir) as tmp:  # a failed export leaves an earlier one as it was
        marian.save_pretrained(tmp)
        hf_tokenizer(tokenizer_file, model.cfg.max_positions).save_pretrained(tmp)
    return Path(out_dir)


def hf_to_ctranslate2(hf_dir: str | Path, out_dir: str | Path, quantization: str | None = None):
    """Convert an export_hf directory to a CTranslate2 model directory (see the module doc)."""
    ctranslate2 = _require("ctranslate2")
    transformers = _require("transformers")
    from ctranslate2.converters.transformers import BartLoader

    class Loader(BartLoader):  # Marian's layers, without OPUS-MT's zero start / dropped <pad>
        def get_model_spec(self, model):
            model.config.normalize_before = False
            model.config.normalize_embedding = False
            return super().get_model_spec(model)

    class Converter(ctranslate2.converters.Converter):
        def _load(self):
            model = transformers.MarianMTModel.from_pretrained(hf_dir, dtype=torch.float32)
            spec = Loader()(model, transformers.AutoTokenizer.from_pretrained(hf_dir))
            spec.register_file(str(Path(hf_dir) / "tokenizer.json"))  # appends </s> itself
            return spec

    with atomic_dir(out_dir) as tmp:  # the converter's force=True empties the dir it writes
        Converter().convert(str(tmp), quantization=quantization, force=True)
    return Path(out_dir)


def export(ckpt_dir: str | Path, to: str, out_dir: str | Path) -> Path:
    """`translate export`: to 'hf' or 'ctranslate2'."""
    if load_checkpoint_config(ckpt_dir).model.pre_norm:  # say so before asking for transformers
        via = "" if to == "hf" else " (the CTranslate2 export is converted from the HF one)"
        raise ExportError(PRE_NORM + via)
    check_out(ckpt_dir, out_dir)
    _require("transformers").utils.logging.disable_progress_bar()
    if to == "hf":
        return export_hf(ckpt_dir, out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        return hf_to_ctranslate2(export_hf(ckpt_dir, Path(tmp) / "hf"), out_dir)

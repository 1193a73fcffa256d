"""CLIP tokenizer (bundled vocabulary, works offline) and the MVDream text encoder (transformers)."""

from __future__ import annotations

import functools
import gzip
import json
import tempfile
from pathlib import Path

import torch

from ..checkpoints.mvdream import MVDreamCheckpoint
from .convert import load_strict

VOCAB_MERGES = 49152 - 256 - 2


@functools.cache
def _clip_vocabulary() -> tuple[dict[str, int], tuple[str, ...]]:
    """CLIP's byte-level BPE vocabulary, rebuilt from the bundled merges the way OpenAI's tokenizer does."""
    data = (Path(__file__).parent.parent / "assets" / "bpe_simple_vocab_16e6.txt.gz").read_bytes()
    merges = tuple(gzip.decompress(data).decode("utf-8").split("\n")[1 : VOCAB_MERGES + 1])
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    unprintable = [b for b in range(256) if b not in printable]
    byte_symbols = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(unprintable))]
    tokens = byte_symbols + [s + "</w>" for s in byte_symbols]
    tokens += ["".join(merge.split()) for merge in merges] + ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


def clip_tokenizer(kind: str = "clip"):
    """CLIP tokenizer: padded with end-of-text for CLIP (SD 1.x), with ``!`` (id 0) for OpenCLIP (SD 2.x)."""
    from transformers import CLIPTokenizer

    vocab, merges = _clip_vocabulary()
    with tempfile.TemporaryDirectory() as folder:
        vocab_file, merges_file = Path(folder, "vocab.json"), Path(folder, "merges.txt")
        vocab_file.write_text(json.dumps(vocab))
        merges_file.write_text("#version: 0.2\n" + "\n".join(merges))
        pad = "<|endoftext|>" if kind == "clip" else "!"
        return CLIPTokenizer(str(vocab_file), str(merges_file), pad_token=pad, model_max_length=77)


def build_text_encoder(checkpoint: MVDreamCheckpoint):
    """The checkpoint's text encoder as a transformers ``CLIPTextModel`` (OpenCLIP converted, penultimate layer)."""
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    from transformers import CLIPTextConfig, CLIPTextModel

    checkpoint.require_full()
    shape = checkpoint.text_shape
    config = CLIPTextConfig(
        vocab_size=shape.vocab_size,
        hidden_size=shape.width,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers_used,
        num_attention_heads=shape.heads,
        max_position_embeddings=shape.max_positions,
        hidden_act="quick_gelu" if shape.kind == "clip" else "gelu",
        projection_dim=shape.width,
    )
    with torch.device("meta"):
        model = CLIPTextModel(config)
    weights = checkpoint.text_encoder
    if shape.kind == "open_clip":
        weights = convert_open_clip_checkpoint(model, weights, prefix="")
    # transformers 5 dropped the ``text_model.`` level that 4.x and the checkpoints have.
    if not any(key.startswith("text_model.") for key in model.state_dict()):
        weights = {key.removeprefix("text_model."): tensor for key, tensor in weights.items()}
    load_strict(model, weights, "text encoder", checkpoint.path)
    for name, _ in list(model.named_buffers()):
        if name.endswith("position_ids"):
            owner = model.get_submodule(name.rsplit(".", 1)[0])
            owner.register_buffer("position_ids", torch.arange(shape.max_positions)[None], persistent=False)
    return model.eval().requires_grad_(False)


@torch.no_grad()
def encode_text(tokenizer, text_encoder, prompts: list[str], device: torch.device) -> torch.Tensor:
    """``(len(prompts), 77, width)``: the last hidden state of the (penultimate-layer) text encoder."""
    ids = tokenizer(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    return text_encoder(ids.to(device)).last_hidden_state

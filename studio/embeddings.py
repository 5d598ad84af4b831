"""Text embeddings from a frozen encoder: mean-pooled, L2-normalised, batched, cached on disk.

A text longer than the encoder's window (max_length tokens) is not cut: it is split into consecutive windows,
each encoded on its own, and its vector is the mean of all windows' token states (each window weighted by its
tokens), so a news article is seen whole rather than as its first paragraph. A text that fits one window gets
exactly the vector plain truncation gave it.

The cache is keyed by (model, window, sha1 of the text), so a second pass over the same texts encodes nothing,
and a vector made with another window or by truncation is never returned for a chunked one.
torch and transformers are imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from studio.atomic import atomic_path
from studio.models import model_key, resolve_model_path
from studio.types import Embeddings, ProgressFn

if TYPE_CHECKING:
    import torch


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def cache_variant(max_length: int, chunked: bool) -> str:
    """The part of the cache file name that says how long texts were embedded ("" = the historical file, which
    holds vectors truncated at any window: kept for `chunked=False` at the default 128 only)."""
    if not chunked:
        return "" if max_length == 128 else f"trunc{max_length}"
    return f"chunk{max_length}"


class EmbeddingCache:
    """One .npz file per (model, variant): `keys` (sha1 hex strings) and `vectors` (N, D) float32.
    variant: cache_variant(max_length, chunked), so vectors made with other window settings stay apart."""

    def __init__(self, folder: Path, model_path: str, variant: str = "") -> None:
        suffix = f"-{variant}" if variant else ""
        self.file = Path(folder) / f"{model_key(model_path)}{suffix}.npz"
        self._index: dict[str, int] = {}
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        if self.file.exists():
            with np.load(self.file, allow_pickle=False) as data:
                keys, vectors = data["keys"], data["vectors"]
            # A file whose keys and rows do not pair up (written before duplicate texts were handled) cannot
            # say which vector is whose: start afresh rather than return another text's embedding.
            if len(keys) == len(vectors):
                self._vectors = vectors
                self._index = {str(k): i for i, k in enumerate(keys)}

    def lookup(self, keys: Sequence[str]) -> tuple[Embeddings | None, list[int]]:
        """Return (vectors with zero rows for misses, indices of the misses)."""
        missing = [i for i, k in enumerate(keys) if k not in self._index]
        if len(self._index) == 0:
            return None, missing
        out = np.zeros((len(keys), self._vectors.shape[1]), dtype=np.float32)
        for i, k in enumerate(keys):
            j = self._index.get(k)
            if j is not None:
                out[i] = self._vectors[j]
        return out, missing

    def add(self, keys: Sequence[str], vectors: Embeddings) -> None:
        new: dict[str, np.ndarray] = {}
        for k, v in zip(keys, vectors):
            if k not in self._index:
                new.setdefault(k, v)  # a text repeated in one batch is stored once, so rows match keys
        if not new:
            return
        start = len(self._index)
        stacked = np.stack(list(new.values())).astype(np.float32)
        self._vectors = stacked if start == 0 else np.concatenate([self._vectors, stacked])
        for offset, k in enumerate(new):
            self._index[k] = start + offset
        self.file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.file) as tmp, open(tmp, "wb") as handle:  # a crash never leaves a torn cache
            np.savez(handle, keys=np.array(list(self._index), dtype="U40"), vectors=self._vectors)


def mean_pool_normalise(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T, D) token states + (B, T) 0/1 attention mask -> (B, D) unit vectors: the mean over real tokens
    (padding excluded), L2-normalised. The one pooling both these embeddings and training/lora.py's model use,
    so a head fitted on `encode`'s vectors fits the fine-tuned model's too."""
    import torch

    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


def _encode_uncached(texts: Sequence[str], model_path: str, *, batch_size: int, max_length: int, chunked: bool,
                     progress: ProgressFn | None) -> Embeddings:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModel.from_pretrained(model_path)
    model.eval()
    # One piece per window of the text (special tokens included): the fast tokenizer's overflow splits a long
    # text into consecutive windows and says whose each is. Without chunking, only the first window is kept.
    enc = tokenizer([str(t) for t in texts], truncation=True, max_length=max_length, padding=False,
                    return_overflowing_tokens=chunked)
    pieces: list[list[int]] = enc["input_ids"]
    owner = enc["overflow_to_sample_mapping"] if chunked else list(range(len(texts)))
    # Sort by length so each batch pads little; sums are scattered back to their texts at the end.
    order = np.argsort([len(p) for p in pieces], kind="stable")
    sums = np.zeros((len(texts), model.config.hidden_size), dtype=np.float64)
    counts = np.zeros(len(texts), dtype=np.float64)
    rows = np.asarray(owner)
    with torch.inference_mode():
        for start in range(0, len(pieces), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer.pad({"input_ids": [pieces[i] for i in idx]}, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            # Token-state sums per window; a text's vector is their total over its tokens (mean_pool_normalise
            # over one window is the same thing for a text that fits).
            np.add.at(sums, rows[idx], (hidden * mask).sum(1).double().numpy())
            np.add.at(counts, rows[idx], mask.sum((1, 2)).double().numpy())
            if progress:
                progress(min(start + batch_size, len(pieces)), len(pieces))
    pooled = sums / np.clip(counts, 1e-9, None)[:, None]
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


def window_counts(texts: Sequence[str], *, model: str = "", max_length: int = 128) -> np.ndarray:
    """(N,) how many encoder windows of max_length tokens each text needs (1 = it fits; more = `encode` embeds it
    as the mean of that many windows). Loads only the tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(model))
    enc = tokenizer([str(t) for t in texts], truncation=True, max_length=max_length, padding=False,
                    return_overflowing_tokens=True, return_attention_mask=False)
    return np.bincount(np.asarray(enc["overflow_to_sample_mapping"], dtype=np.int64), minlength=len(texts))


def encode(texts: Sequence[str], *, model: str = "", batch_size: int = 64, max_length: int = 128,
           chunked: bool = True, cache_dir: str | Path | None = None, progress: ProgressFn | None = None
           ) -> Embeddings:
    """Embed texts with a frozen encoder.

    texts: N strings (empty strings are allowed and embed like any other text).
    model: "" for the packaged all-MiniLM-L6-v2, a local folder or a cached hub id.
    max_length: the encoder window in tokens, special tokens included. chunked: a longer text is embedded as
    the mean over all its windows (True), or cut to its first window (False, the behaviour before chunking).
    Returns (N, D) float32, mean-pooled over tokens and L2-normalised (so dot product = cosine similarity).
    With `cache_dir`, vectors are looked up by (model, window, chunking, sha1(text)) and only misses are encoded.
    progress(done, total) counts windows, not texts.
    """
    texts = [str(t) for t in texts]
    model_path = resolve_model_path(model)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    if cache_dir is None:
        return _encode_uncached(texts, model_path, batch_size=batch_size, max_length=max_length,
                                chunked=chunked, progress=progress)
    cache = EmbeddingCache(Path(cache_dir), model_path, cache_variant(max_length, chunked))
    keys = [text_hash(t) for t in texts]
    cached, missing = cache.lookup(keys)
    if missing:
        todo = list({keys[i]: texts[i] for i in missing}.items())  # each distinct text encoded once
        fresh = _encode_uncached([t for _, t in todo], model_path, batch_size=batch_size,
                                 max_length=max_length, chunked=chunked, progress=progress)
        cache.add([k for k, _ in todo], fresh)
        cached, missing = cache.lookup(keys)
    elif progress:
        progress(len(texts), len(texts))
    assert cached is not None and not missing  # invariant: everything was just added
    return cached

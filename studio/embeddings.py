"""Text embeddings from a frozen encoder: mean-pooled, L2-normalised, batched, cached on disk.

The cache is keyed by (model, sha1 of the text), so a second pass over the same texts encodes nothing.
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


class EmbeddingCache:
    """One .npz file per model: `keys` (sha1 hex strings) and `vectors` (N, D) float32."""

    def __init__(self, folder: Path, model_path: str) -> None:
        self.file = Path(folder) / f"{model_key(model_path)}.npz"
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


def _encode_uncached(texts: Sequence[str], model_path: str, *, batch_size: int, max_length: int,
                     progress: ProgressFn | None) -> Embeddings:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModel.from_pretrained(model_path)
    model.eval()
    # Sort by length so each batch pads little; restore the order at the end.
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt")
            pooled = mean_pool_normalise(model(**batch).last_hidden_state, batch["attention_mask"])
            out[idx] = pooled.float().numpy()
            if progress:
                progress(min(start + batch_size, len(texts)), len(texts))
    return out


def encode(texts: Sequence[str], *, model: str = "", batch_size: int = 64, max_length: int = 128,
           cache_dir: str | Path | None = None, progress: ProgressFn | None = None) -> Embeddings:
    """Embed texts with a frozen encoder.

    texts: N strings (empty strings are allowed and embed like any other text).
    model: "" for the packaged all-MiniLM-L6-v2, a local folder or a cached hub id.
    Returns (N, D) float32, mean-pooled over tokens and L2-normalised (so dot product = cosine similarity).
    With `cache_dir`, vectors are looked up by (model, sha1(text)) and only misses are encoded.
    """
    texts = [str(t) for t in texts]
    model_path = resolve_model_path(model)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    if cache_dir is None:
        return _encode_uncached(texts, model_path, batch_size=batch_size, max_length=max_length,
                                progress=progress)
    cache = EmbeddingCache(Path(cache_dir), model_path)
    keys = [text_hash(t) for t in texts]
    cached, missing = cache.lookup(keys)
    if missing:
        todo = list({keys[i]: texts[i] for i in missing}.items())  # each distinct text encoded once
        fresh = _encode_uncached([t for _, t in todo], model_path, batch_size=batch_size,
                                 max_length=max_length, progress=progress)
        cache.add([k for k, _ in todo], fresh)
        cached, missing = cache.lookup(keys)
    elif progress:
        progress(len(texts), len(texts))
    assert cached is not None and not missing  # invariant: everything was just added
    return cached

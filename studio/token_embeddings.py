"""Word vectors from a frozen encoder: one row per word of `studio.spans.word_offsets`, cached on disk.

A word's vector is the mean of the encoder's last hidden states over the word's sub-tokens. The word list is
tokenised with ``is_split_into_words=True`` and sub-tokens are mapped back to words with ``word_ids()``, so a
word is exactly what the span contract calls a word, whatever the tokenizer does inside it.

Long texts: a text whose words need more than ``max_length - 2`` sub-tokens (two for [CLS]/[SEP]) is encoded in
overlapping windows of whole words, each window at most that long, the next one starting half a window after
the last. Every word takes its vector from the window in which it lies farthest from an edge, so each word gets
context on both sides where the text has it and no word is dropped. A single word longer than a whole window
keeps its first ``max_length - 2`` sub-tokens. A word the tokenizer turns into nothing (a lone control or
zero-width character) is encoded as the unknown token, so every word has a row.

Cache: with `cache_dir`, rows live in ``cache_dir/words/<model>.npz`` (studio.embeddings.EmbeddingCache), one
row per (max_length, sha1 of the text, word index); a second pass over the same texts encodes nothing.
WNUT-17 train + test (4,681 texts, 110k words) encode cold in ~95 s on 2 busy cores, warm in ~1 s.
torch and transformers are imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from studio.embeddings import EmbeddingCache, text_hash
from studio.errors import DataError
from studio.models import resolve_model_path
from studio.spans import word_offsets
from studio.types import ProgressFn

#: Sub-tokens of a window's words reserved for the encoder's special tokens ([CLS] and [SEP]).
_SPECIAL = 2


@lru_cache(maxsize=2)
def _load(model_path: str) -> tuple[Any, Any]:
    """(tokenizer, model in eval mode), loaded once per process: a page that encodes twice loads once."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if not getattr(tokenizer, "is_fast", False):
        raise DataError(f"the tokenizer of {model_path!r} is a slow (Python) tokenizer; word vectors need "
                        "word_ids(), which only fast tokenizers give.",
                        hint="use a model folder with a tokenizer.json, e.g. the default all-MiniLM-L6-v2")
    model = AutoModel.from_pretrained(model_path)
    model.eval()
    return tokenizer, model


def _word_key(max_length: int, text_key: str, w: int) -> str:
    # EmbeddingCache stores 40-character keys, so the triple is hashed to one sha1.
    return hashlib.sha1(f"{max_length}:{text_key}:{w}".encode()).hexdigest()


def _windows(counts: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """Word ranges [start, end) covering every word, each at most `budget` sub-tokens (a lone longer word is a
    window of its own); consecutive windows overlap by about half a window."""
    n = len(counts)
    if sum(counts) <= budget:
        return [(0, n)]
    out: list[tuple[int, int]] = []
    start = 0
    while True:
        end, used = start, 0
        while end < n and (end == start or used + counts[end] <= budget):
            used += counts[end]
            end += 1
        out.append((start, end))
        if end >= n:
            return out
        # Next window starts at the first word past the half-way point of this one, and always moves forward.
        half, acc, nxt = used / 2, 0, start
        while nxt < end - 1 and acc + counts[nxt] <= half:
            acc += counts[nxt]
            nxt += 1
        start = max(nxt, start + 1)


def _owner_window(windows: list[tuple[int, int]], n_words: int) -> np.ndarray:
    """(W,) index of the window each word reads its vector from: the one where it is farthest from an edge."""
    best = np.full(n_words, -1)
    margin = np.full(n_words, -1)
    for k, (a, b) in enumerate(windows):
        idx = np.arange(a, b)
        m = np.minimum(idx - a, b - 1 - idx)
        better = m > margin[a:b]
        best[a:b][better] = k
        margin[a:b][better] = m[better]
    return best


def _encode_uncached(texts: Sequence[str], model_path: str, *, max_length: int, batch_size: int,
                     progress: ProgressFn | None) -> list[np.ndarray]:
    import torch

    tokenizer, model = _load(model_path)
    dim = int(model.config.hidden_size)
    budget = max(max_length - _SPECIAL, 1)
    words_of = [[t[a:b] for a, b in word_offsets(t)] for t in texts]
    # Pieces: (text index, first word, words); one text is one piece unless it needs windows.
    pieces: list[tuple[int, int, list[str]]] = []
    owners: list[tuple[np.ndarray, list[int]]] = []
    for i, words in enumerate(words_of):
        if not words:
            owners.append((np.zeros(0, dtype=int), []))
            continue
        ids = tokenizer(words, is_split_into_words=True, add_special_tokens=False, verbose=False).word_ids()
        counts = np.bincount([w for w in ids if w is not None], minlength=len(words))
        for w in np.flatnonzero(counts == 0):
            words[w] = tokenizer.unk_token  # nothing left of it after normalisation: still one row
        counts = np.maximum(counts, 1)
        windows = _windows(counts.tolist(), budget)
        first_piece = len(pieces)
        pieces += [(i, a, words[a:b]) for a, b in windows]
        owners.append((_owner_window(windows, len(words)), list(range(first_piece, len(pieces)))))

    piece_vecs: list[np.ndarray] = [np.zeros((0, dim), np.float32)] * len(pieces)
    order = np.argsort([sum(len(w) for w in p[2]) for p in pieces], kind="stable")  # similar lengths pad little
    with torch.inference_mode():
        for start in range(0, len(pieces), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer([pieces[k][2] for k in idx], is_split_into_words=True, padding=True,
                              truncation=True, max_length=max_length, return_tensors="pt")
            hidden = model(**batch).last_hidden_state.float().numpy()
            for row, k in enumerate(idx):
                word_ids = np.array([-1 if w is None else w for w in batch.word_ids(row)])
                keep = word_ids >= 0
                n_words = len(pieces[k][2])
                sums = np.zeros((n_words, dim), np.float32)
                np.add.at(sums, word_ids[keep], hidden[row][keep])
                n = np.bincount(word_ids[keep], minlength=n_words)[:, None]
                piece_vecs[k] = sums / np.maximum(n, 1)
            if progress:
                progress(min(start + batch_size, len(pieces)), len(pieces))

    out = []
    for owner, piece_ids in owners:
        vecs = np.zeros((len(owner), dim), np.float32)
        for local, k in enumerate(piece_ids):
            first = pieces[k][1]
            mine = np.flatnonzero(owner == local)
            vecs[mine] = piece_vecs[k][mine - first]
        out.append(vecs)
    return out


def encode_words(texts: Sequence[str], *, model: str = "", max_length: int = 128, batch_size: int = 32,
                 cache_dir: Path | None = None, progress: ProgressFn | None = None) -> list[np.ndarray]:
    """Contextual word vectors from a frozen encoder.

    texts: N strings. model: "" for the packaged all-MiniLM-L6-v2, a local folder or a cached hub id.
    max_length: sub-tokens per encoder pass including [CLS]/[SEP]; longer texts are windowed (module docstring).
    Returns N float32 arrays, the i-th of shape (W_i, D) with W_i = len(word_offsets(texts[i])): row w is the
    mean last hidden state of word w's sub-tokens (not normalised). A text without words gives (0, D).
    With `cache_dir`, rows are looked up by (model, max_length, sha1(text), word index); only misses are encoded.
    """
    if max_length < _SPECIAL + 1:
        raise DataError(f"max_length = {max_length}; expected at least {_SPECIAL + 1} (two special tokens and "
                        "one word piece).", hint="use the encoder's usual 128 or 256")
    texts = [str(t) for t in texts]
    model_path = resolve_model_path(model)
    if not texts:
        return []
    if cache_dir is None:
        return _encode_uncached(texts, model_path, max_length=max_length, batch_size=batch_size,
                                progress=progress)
    cache = EmbeddingCache(Path(cache_dir) / "words", model_path)
    lengths = [len(word_offsets(t)) for t in texts]
    keys = [[_word_key(max_length, text_hash(t), w) for w in range(n)] for t, n in zip(texts, lengths)]
    flat = [k for row in keys for k in row]
    cached, missing = cache.lookup(flat)
    if missing:
        row_of = np.repeat(np.arange(len(texts)), lengths)
        todo_rows = sorted(set(row_of[missing].tolist()))
        distinct = list({texts[i]: i for i in todo_rows}.values())  # each distinct text encoded once
        fresh = _encode_uncached([texts[i] for i in distinct], model_path, max_length=max_length,
                                 batch_size=batch_size, progress=progress)
        new_keys = [k for i in distinct for k in keys[i]]
        if new_keys:
            cache.add(new_keys, np.concatenate(fresh))
        cached, missing = cache.lookup(flat)
    elif progress:
        progress(len(texts), len(texts))
    if cached is None:  # only texts without words: the width comes from the model's config
        from transformers import AutoConfig

        dim = int(AutoConfig.from_pretrained(model_path).hidden_size)
        return [np.zeros((0, dim), np.float32) for _ in texts]
    bounds = np.cumsum([0] + lengths)
    return [cached[bounds[i]:bounds[i + 1]] for i in range(len(texts))]

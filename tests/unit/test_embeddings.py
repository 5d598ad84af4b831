"""The embedding cache returns each text's own vector, also when texts repeat."""

import numpy as np

from studio.embeddings import EmbeddingCache, encode
from studio.models import resolve_model_path

TEXTS = ["yes", "where is my card", "yes", "no", "refund please", "no", "yes"]


def test_cached_vectors_match_uncached_with_repeated_texts(tmp_path):
    direct = encode(TEXTS)
    first = encode(TEXTS, cache_dir=tmp_path)  # repeats inside one batch of misses
    more = TEXTS + ["a new text", "yes", "another one"]
    second = encode(more, cache_dir=tmp_path)  # appended after the repeats
    reloaded = encode(more, cache_dir=tmp_path)  # read back from disk
    np.testing.assert_allclose(first, direct, atol=1e-5)
    np.testing.assert_allclose(second, encode(more), atol=1e-5)
    np.testing.assert_allclose(reloaded, second, atol=1e-6)
    cache = EmbeddingCache(tmp_path, resolve_model_path(""))
    assert len(cache._index) == len(set(more)) == len(cache._vectors)


def test_a_cache_file_whose_rows_do_not_match_its_keys_is_ignored(tmp_path):
    encode(TEXTS[:2], cache_dir=tmp_path)
    file = next(tmp_path.glob("*.npz"))
    with np.load(file) as data:
        keys, vectors = data["keys"], data["vectors"]
    np.savez(file, keys=keys, vectors=np.concatenate([vectors[1:], vectors]))  # rows shifted by one
    np.testing.assert_allclose(encode(TEXTS[:2], cache_dir=tmp_path), encode(TEXTS[:2]), atol=1e-5)

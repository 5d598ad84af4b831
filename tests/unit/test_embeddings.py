"""The embedding cache returns each text's own vector, also when texts repeat."""

import numpy as np

from studio.embeddings import EmbeddingCache, cache_variant, encode, window_counts
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
    cache = EmbeddingCache(tmp_path, resolve_model_path(""), cache_variant(128, True))
    assert len(cache._index) == len(set(more)) == len(cache._vectors)


def test_a_cache_file_whose_rows_do_not_match_its_keys_is_ignored(tmp_path):
    encode(TEXTS[:2], cache_dir=tmp_path)
    file = next(tmp_path.glob("*.npz"))
    with np.load(file) as data:
        keys, vectors = data["keys"], data["vectors"]
    np.savez(file, keys=keys, vectors=np.concatenate([vectors[1:], vectors]))  # rows shifted by one
    np.testing.assert_allclose(encode(TEXTS[:2], cache_dir=tmp_path), encode(TEXTS[:2]), atol=1e-5)


LONG = ("The bank raised its rates again this quarter. " * 30 + "Meanwhile the football club won the cup final. " * 30)


def test_a_text_longer_than_the_window_is_embedded_whole_as_the_mean_of_its_windows():
    short = "where is my card"
    assert list(window_counts([short, LONG], max_length=32)) == [1, int(window_counts([LONG], max_length=32)[0])]
    assert window_counts([LONG], max_length=32)[0] > 4
    whole, cut = encode([short, LONG], max_length=32), encode([short, LONG], max_length=32, chunked=False)
    np.testing.assert_allclose(whole[0], cut[0], atol=1e-5)  # a text that fits is embedded as before
    np.testing.assert_allclose(np.linalg.norm(whole, axis=1), 1.0, atol=1e-5)
    # The cut vector saw only the bank sentences; the whole one also the football half, so it sits nearer to it.
    bank, football = encode(["The bank raised its rates again this quarter.",
                             "Meanwhile the football club won the cup final."], max_length=32)
    assert whole[1] @ football > cut[1] @ football + 0.05
    assert whole[1] @ bank > 0.5


def test_chunking_and_window_are_part_of_the_cache_key(tmp_path):
    whole = encode([LONG], max_length=32, cache_dir=tmp_path)
    cut = encode([LONG], max_length=32, chunked=False, cache_dir=tmp_path)
    assert float(whole[0] @ cut[0]) < 0.999  # the cut vector was not served from the chunked entry
    np.testing.assert_allclose(encode([LONG], max_length=32, cache_dir=tmp_path), whole, atol=1e-6)
    assert len(list(tmp_path.glob("*.npz"))) == 2

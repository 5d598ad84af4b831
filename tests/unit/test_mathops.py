"""studio.mathops: softmax and sigmoid against their definitions, on logits large enough to overflow a naive exp."""

import warnings

import numpy as np

from studio.mathops import sigmoid, softmax


def test_softmax_matches_the_definition_and_survives_huge_logits():
    z = np.random.default_rng(0).normal(size=(6, 4))
    expected = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax(z), expected, rtol=1e-12)
    np.testing.assert_allclose(softmax(z.T, axis=0), expected.T, rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow would warn
        p = softmax(np.array([[1000.0, 0.0, -1000.0]]))
    np.testing.assert_allclose(p, [[1.0, 0.0, 0.0]])
    assert softmax(z.astype(np.float32)).dtype == np.float32


def test_sigmoid_matches_the_definition_and_never_overflows():
    z = np.linspace(-30, 30, 61)
    np.testing.assert_allclose(sigmoid(z), 1.0 / (1.0 + np.exp(-z)), rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_allclose(s, [0.0, 0.5, 1.0])
    assert sigmoid(np.zeros((2, 3), dtype=np.float32)).shape == (2, 3)

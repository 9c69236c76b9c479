import numpy as np
import pytest
from hypothesis import given

from phase_00_math.gradcheck import check_gradients
from phase_00_math.strategies import seeds, shapes, sizes
from phase_01_nn.dropout import Dropout, dropout_backward, dropout_forward, dropout_mask
from phase_01_nn.embedding import Embedding, embedding_backward, embedding_forward
from phase_01_nn.module import check_module_gradients


@given(shape=shapes(), seed=seeds())
def test_dropout_gradient(shape, seed):
    rng = np.random.default_rng(seed)
    mask = dropout_mask(rng, shape, p=0.3)
    check_gradients(dropout_forward, dropout_backward, rng.standard_normal(shape), mask=mask, p=0.3)


def test_dropout_keeps_the_expectation():
    rng = np.random.default_rng(0)
    x = np.ones(200_000)
    out, _ = dropout_forward(x, mask=dropout_mask(rng, x.shape, 0.25), p=0.25)
    assert abs(out.mean() - 1.0) < 0.01
    assert abs(np.mean(out == 0) - 0.25) < 0.01


def test_dropout_module_is_identity_in_eval_mode():
    layer = Dropout(0.5, np.random.default_rng(0))
    x = np.arange(6.0)
    assert not np.array_equal(layer.forward(x), x)
    layer.eval()
    np.testing.assert_array_equal(layer.forward(x), x)
    np.testing.assert_array_equal(layer.backward(np.ones(6)), np.ones(6))


def test_dropout_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\), got 1.0"):
        dropout_mask(np.random.default_rng(0), (2,), 1.0)
    with pytest.raises(TypeError, match="boolean"):
        dropout_forward(np.ones(2), mask=np.ones(2), p=0.1)


@given(v=sizes(1, 6), c=sizes(), ids_shape=shapes(1, 2), seed=seeds())
def test_embedding_gradient_with_repeated_ids(v, c, ids_shape, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, v, size=ids_shape)
    check_gradients(embedding_forward, embedding_backward, rng.standard_normal((v, c)), ids=ids)


def test_embedding_backward_adds_repeats():
    _, cache = embedding_forward(np.zeros((3, 2)), ids=np.array([1, 1, 2]))
    (dw,) = embedding_backward(np.ones((3, 2)), cache)
    np.testing.assert_array_equal(dw, [[0, 0], [2, 2], [1, 1]])


def test_embedding_rejects_bad_ids():
    with pytest.raises(ValueError, match=r"token id 5 is outside the vocabulary \[0, 4\)"):
        embedding_forward(np.zeros((4, 2)), ids=np.array([0, 5]))
    with pytest.raises(TypeError, match="integers"):
        embedding_forward(np.zeros((4, 2)), ids=np.array([0.0]))


def test_embedding_module_accumulates():
    layer = Embedding(5, 3, rng=np.random.default_rng(0), dtype=np.float64)
    layer.forward(np.array([[0, 4], [4, 4]]))
    layer.backward(np.ones((2, 2, 3)))
    np.testing.assert_array_equal(layer.grads["weight"][:, 0], [1, 0, 0, 0, 3])


def test_embedding_module_gradient_check_skips_integer_input():
    layer = Embedding(4, 2, rng=np.random.default_rng(1), dtype=np.float64)
    errors = check_module_gradients(layer, np.array([[0, 3, 3]]))
    assert set(errors) == {"weight"}


def test_the_fused_embedding_backward_agrees_with_np_add_at(monkeypatch):
    """float32: the module adds the rows into its gradient in a numba loop; ``FUSED = False``
    takes ``embedding_backward`` (np.add.at). Repeated ids add up both ways, and a gradient that
    already holds something keeps it."""
    from phase_01_nn import embedding

    rng = np.random.default_rng(0)
    ids = rng.integers(0, 7, (4, 9))  # 36 ids over 7 rows: many repeats
    dout = rng.standard_normal((4, 9, 5)).astype(np.float32)
    results = []
    for fused in (True, False):
        monkeypatch.setattr(embedding, "FUSED", fused)
        layer = Embedding(7, 5, rng=np.random.default_rng(1))
        layer.grads["weight"] += 1.0
        layer.forward(ids)
        assert layer.backward(dout) is None
        results.append(layer.grads["weight"].copy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6, atol=1e-6)
    assert results[0].dtype == np.float32

import numpy as np
import pytest
from hypothesis import given

from phase_00_math.strategies import seeds
from phase_01_nn.datasets import make_dataset, moons, spirals, xor
from phase_01_nn.perceptron import perceptron_predict, perceptron_train


@given(seed=seeds())
def test_perceptron_converges_within_novikoffs_bound(seed):
    rng = np.random.default_rng(seed)
    w_true = rng.standard_normal(3)
    x = rng.standard_normal((80, 3))
    scores = x @ w_true
    keep = np.abs(scores) / np.linalg.norm(w_true) > 0.1
    x, y = x[keep], np.where(scores[keep] > 0, 1, -1)
    result = perceptron_train(x, y, epochs=10_000)
    assert result.converged
    np.testing.assert_array_equal(perceptron_predict(x, result.w, result.b), y)
    # Novikoff: mistakes <= (R / gamma)^2 for the augmented points (x, 1) and unit separator
    augmented = np.hstack([x, np.ones((len(x), 1))])
    u = np.append(w_true, 0.0) / np.linalg.norm(w_true)
    gamma = np.min(y * (augmented @ u))
    radius = np.max(np.linalg.norm(augmented, axis=1))
    assert sum(result.mistakes_per_epoch) <= (radius / gamma) ** 2


def test_perceptron_never_converges_on_xor():
    x, labels = xor(np.random.default_rng(0), 40, noise=0.05)
    result = perceptron_train(x, np.where(labels == 1, 1, -1), epochs=200)
    assert not result.converged
    assert min(result.mistakes_per_epoch) > 0


def test_perceptron_rejects_bad_labels():
    with pytest.raises(ValueError, match="-1 or \\+1"):
        perceptron_train(np.zeros((2, 2)), np.array([0, 1]))


@pytest.mark.parametrize("name", ["spirals", "moons", "xor"])
def test_datasets_are_seeded_and_shaped(name):
    x1, y1 = make_dataset(name, np.random.default_rng(7))
    x2, y2 = make_dataset(name, np.random.default_rng(7))
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert x1.ndim == 2 and x1.shape[1] == 2 and y1.shape == (len(x1),)
    assert y1.dtype == np.int64


def test_dataset_sizes_and_balance():
    x, y = spirals(np.random.default_rng(0), n_per_class=50, n_classes=4)
    assert x.shape == (200, 2) and np.bincount(y).tolist() == [50] * 4
    x, y = moons(np.random.default_rng(0), n_samples=101)
    assert x.shape == (101, 2) and set(y.tolist()) == {0, 1}
    x, y = xor(np.random.default_rng(0), n_samples=8, noise=0.0)
    np.testing.assert_array_equal(y, (np.sign(x[:, 0]) != np.sign(x[:, 1])).astype(int))


def test_unknown_dataset_name_fails_clearly():
    with pytest.raises(ValueError, match="unknown dataset 'spiral'; choose one of: moons, "
                                          "spirals, xor"):
        make_dataset("spiral", np.random.default_rng(0))

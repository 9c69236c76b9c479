import numpy as np
import pytest
from hypothesis import given

from phase_00_math.gradcheck import check_gradients
from phase_00_math.strategies import seeds, sizes
from phase_01_nn.module import check_module_gradients
from phase_03_tokenization.word2vec import (
    SkipGram,
    nearest_words,
    noise_distribution,
    sample_batch,
    sgns_backward,
    sgns_forward,
    subsample,
    word_corpus,
)


@given(b=sizes(2, 4), k=sizes(1, 3), d=sizes(2, 4), seed=seeds())
def test_sgns_gradients(b, k, d, seed):
    # At least 4 elements per gradient: with one, dv = g+ u_o + sum_k g_k u_k can cancel to
    # ~1e-4 (b = d = 1, seed 1376), where the finite differences' 1e-10 rounding error alone
    # exceeds the relative tolerance. A whole array cancelling at once is vanishingly rare.
    rng = np.random.default_rng(seed)
    check_gradients(sgns_forward, sgns_backward, rng.standard_normal((b, d)),
                    rng.standard_normal((b, d)), rng.standard_normal((b, k, d)),
                    names=["v_center", "u_context", "u_negative"], seed=seed)


def test_sgns_loss_value():
    # u.v = 0 everywhere: each term is log 2, once for the context and once per noise word.
    loss, _ = sgns_forward(np.zeros((2, 3)), np.ones((2, 3)), np.ones((2, 4, 3)))
    assert loss == pytest.approx(5 * np.log(2))
    loss, _ = sgns_forward(np.full((1, 1), 50.0), np.ones((1, 1)), -np.ones((1, 2, 1)))
    assert 0 < loss < 1e-20  # large margins: no overflow, loss near zero


def test_skipgram_gradients_with_shared_and_repeated_rows():
    rng = np.random.default_rng(0)
    model = SkipGram(5, 3, rng=rng, dtype=np.float64)
    model.params["w_out"][...] = rng.standard_normal((5, 3))
    batch = np.array([[0, 1, 2, 1], [1, 1, 1, 1], [1, 4, 3, 0]])  # word 1 in every role
    check_module_gradients(model, batch)


def test_corpus_subsampling_and_batches():
    text = "The cat sat. the cat ran! THE dog sat o'er the mat; the end " * 20
    corpus = word_corpus(text, min_count=20)
    assert corpus.words[:2] == ["the", "cat"] and "o'er" in corpus.words
    assert "end" in corpus.words and corpus.ids.size == 14 * 20
    kept = subsample(corpus, 1e-1, np.random.default_rng(0))
    assert np.mean(kept == 0) < np.mean(corpus.ids == 0)  # "the" is thinned the most
    cdf = np.cumsum(noise_distribution(corpus.counts))
    batch = sample_batch(corpus.ids, 64, 2, cdf, 3, np.random.default_rng(1))
    assert batch.shape == (64, 5) and batch.min() >= 0 and batch.max() < len(corpus.words)
    with pytest.raises(ValueError, match="2 words that occur 41 times or more; this text has 1"):
        word_corpus(text, min_count=41)


def test_nearest_words_by_cosine():
    vectors = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    words = ["king", "queen", "apple", "knave"]
    result = nearest_words(vectors, words, "king", k=3)
    assert [w for w, _ in result] == ["queen", "apple", "knave"]
    assert result[0][1] == pytest.approx(0.9 / np.hypot(0.9, 0.1))
    with pytest.raises(ValueError, match="'prince' is not in the vocabulary of 4 words"):
        nearest_words(vectors, words, "prince")

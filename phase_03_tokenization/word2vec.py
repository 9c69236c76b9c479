"""word2vec: skip-gram with negative sampling (Mikolov et al. 2013), forward and backward by hand.

Each word has two vectors: ``w_in[w]`` when it is the centre word and ``w_out[w]`` when it is
a context word. For a centre c, an observed context o and K words drawn from the noise
distribution (unigram counts to the power 3/4), the loss is

    L = -log sigmoid(u_o . v_c) - sum_k log sigmoid(-u_k . v_c)

averaged over the batch: a logistic regression telling real context words from noise. The
lookups are phase 1's embedding op, whose backward is a scatter-add. Notes:
``phase_03_tokenization/notes/04_word2vec.md``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import regex

from phase_01_nn.activations import sigmoid
from phase_01_nn.embedding import embedding_backward, embedding_forward
from phase_01_nn.module import Module

WORD = regex.compile(r"[a-z]+(?:'[a-z]+)?")


def sgns_forward(v_center: np.ndarray, u_context: np.ndarray, u_negative: np.ndarray):
    """v_center: (B, D), u_context: (B, D), u_negative: (B, K, D) -> mean loss, a scalar.
    L = mean_b [ softplus(-u_o.v_c) + sum_k softplus(u_k.v_c) ], softplus(x) = log(1 + e^x)."""
    positive = np.einsum("bd,bd->b", u_context, v_center)
    negative = np.einsum("bkd,bd->bk", u_negative, v_center)
    loss = np.mean(np.logaddexp(0, -positive) + np.logaddexp(0, negative).sum(axis=1))
    return np.asarray(loss, dtype=v_center.dtype), (v_center, u_context, u_negative, positive,
                                                     negative)


def sgns_backward(dout, cache):
    """d/ds softplus(-s) = -sigmoid(-s), d/ds softplus(s) = sigmoid(s); then the dot products."""
    v_center, u_context, u_negative, positive, negative = cache
    scale = dout / v_center.shape[0]
    g_positive = -sigmoid(-positive) * scale  # (B,)
    g_negative = sigmoid(negative) * scale  # (B, K)
    dv = g_positive[:, None] * u_context + np.einsum("bk,bkd->bd", g_negative, u_negative)
    du_context = g_positive[:, None] * v_center
    du_negative = g_negative[:, :, None] * v_center[:, None, :]
    return dv, du_context, du_negative


# --------------------------------------------------------------------------------- the data

@dataclass
class WordCorpus:
    """``ids`` (N,) the corpus as word ids; ``words[i]`` the word of id i, by falling count."""
    words: list[str]
    counts: np.ndarray
    ids: np.ndarray


def word_corpus(text: str, min_count: int) -> WordCorpus:
    """Lower-cased words (letters, with an inner apostrophe: "o'er"); words seen fewer than
    ``min_count`` times are dropped from the vocabulary and from the sequence."""
    tokens = WORD.findall(text.lower())
    counted = Counter(tokens)
    words = sorted((w for w, n in counted.items() if n >= min_count),
                   key=lambda w: (-counted[w], w))
    if len(words) < 2:
        raise ValueError(f"word2vec needs at least 2 words that occur {min_count} times or "
                         f"more; this text has {len(words)}")
    index = {w: i for i, w in enumerate(words)}
    ids = np.array([index[t] for t in tokens if t in index], dtype=np.int64)
    return WordCorpus(words, np.array([counted[w] for w in words], dtype=np.int64), ids)


def subsample(corpus: WordCorpus, threshold: float, rng: np.random.Generator) -> np.ndarray:
    """Mikolov et al.'s subsampling: drop each occurrence of a word of frequency f with
    probability 1 - sqrt(threshold / f), thinning "the" and "and" and keeping rare words."""
    frequency = corpus.counts / corpus.counts.sum()
    keep = np.minimum(1.0, np.sqrt(threshold / frequency))
    return corpus.ids[rng.random(corpus.ids.size) < keep[corpus.ids]]


def noise_distribution(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """P(w) proportional to count(w)^0.75: flatter than the unigram distribution."""
    weights = counts.astype(np.float64) ** power
    return weights / weights.sum()


def sample_batch(ids: np.ndarray, batch_size: int, window: int, noise_cdf: np.ndarray,
                 negatives: int, rng: np.random.Generator) -> np.ndarray:
    """(B, 2 + K) word ids, one example a row: a centre word at a random position, a context
    word 1 to ``window`` places before or after it, and K words drawn from the noise
    distribution (given by its cumulative sum ``noise_cdf``)."""
    offsets = rng.integers(1, window + 1, size=batch_size) * rng.choice([-1, 1], size=batch_size)
    centres = rng.integers(window, ids.size - window, size=batch_size)
    noise = np.searchsorted(noise_cdf, rng.random((batch_size, negatives)), side="right")
    noise = np.minimum(noise, noise_cdf.size - 1)  # guards against a cdf that ends below 1.0
    return np.column_stack([ids[centres], ids[centres + offsets], noise])


# ------------------------------------------------------------------------------- the model

class SkipGram(Module):
    """``w_in`` (V, D) the word vectors; ``w_out`` (V, D) the context vectors."""

    def __init__(self, vocab_size: int, dim: int, *, rng: np.random.Generator,
                 dtype=np.float32) -> None:
        super().__init__()
        # word2vec's initialisation: small uniform input vectors, zero output vectors.
        self.add_param("w_in", rng.uniform(-0.5 / dim, 0.5 / dim, (vocab_size, dim)).astype(dtype))
        self.add_param("w_out", np.zeros((vocab_size, dim), dtype=dtype))
        self._caches = None

    def forward(self, batch):
        """batch: (B, 2 + K) ids, columns centre, context, K noise words -> the mean loss."""
        v, in_cache = embedding_forward(self.params["w_in"], ids=batch[:, 0])
        u, context_cache = embedding_forward(self.params["w_out"], ids=batch[:, 1])
        u_noise, noise_cache = embedding_forward(self.params["w_out"], ids=batch[:, 2:])
        loss, cache = sgns_forward(v, u, u_noise)
        self._caches = in_cache, context_cache, noise_cache, cache
        return loss

    def backward(self, dout):
        in_cache, context_cache, noise_cache, cache = self._caches
        dv, du, du_noise = sgns_backward(dout, cache)
        self.grads["w_in"] += embedding_backward(dv, in_cache)[0]
        self.grads["w_out"] += embedding_backward(du, context_cache)[0]
        self.grads["w_out"] += embedding_backward(du_noise, noise_cache)[0]
        return None


def nearest_words(vectors: np.ndarray, words: list[str], query: str, k: int = 8):
    """The k words whose vectors have the highest cosine similarity to ``query``'s."""
    index = {w: i for i, w in enumerate(words)}
    if query not in index:
        raise ValueError(f"{query!r} is not in the vocabulary of {len(words)} words")
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit[index[query]]
    similarity[index[query]] = -np.inf
    best = np.argsort(-similarity)[:k]
    return [(words[i], float(similarity[i])) for i in best]

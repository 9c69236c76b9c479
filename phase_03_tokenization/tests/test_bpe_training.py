import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from phase_01_nn.corpus import load_corpus
from phase_03_tokenization.bpe_training import (
    merge_pair,
    train_incremental,
    train_reference,
)
from phase_03_tokenization.tests.strategies import small_alphabet_texts, unicode_texts


def test_merge_pair_is_left_to_right_without_overlap():
    assert merge_pair([1, 1, 1], (1, 1), 9) == [9, 1]
    assert merge_pair([1, 1, 1, 1], (1, 1), 9) == [9, 9]
    assert merge_pair([2, 1, 2, 1], (1, 2), 9) == [2, 9, 1]


def test_the_wikipedia_example():
    # aaabdaaabac: "aa" occurs 4 times (no overlap: aaa -> Z a), then "Za" and "ab" tie at 2
    # and the smaller pair (97, 98) wins.
    merges = train_reference("aaabdaaabac", 259)
    assert merges == [(97, 97), (97, 98), (256, 257)]
    assert train_incremental("aaabdaaabac", 259) == merges


def test_ties_go_to_the_smallest_pair_and_chunks_do_not_merge_across():
    # The chunks are "ab" and " cd": three pairs, one occurrence each.
    assert train_reference("ab cd", 257) == [(32, 99)]
    assert train_incremental("ab cd", 257) == [(32, 99)]


def test_counts_are_weighted_by_chunk_frequency():
    # " xy" occurs three times, "ab" once as one chunk: (32, 120) and (120, 121) count 3.
    text = "ab xy xy xy"
    assert train_reference(text, 258) == [(32, 120), (256, 121)]
    assert train_incremental(text, 258) == [(32, 120), (256, 121)]


def test_training_stops_when_no_pair_is_left():
    assert train_reference("ab ab", 1000) == [(97, 98), (32, 256)]
    assert train_incremental("ab ab", 1000) == [(97, 98), (32, 256)]


def test_special_tokens_are_never_merged():
    text = "<|end|>hi<|end|>hi<|end|>"
    merges = train_incremental(text, 300, special_tokens=["<|end|>"])
    assert merges == train_reference(text, 300, special_tokens=["<|end|>"]) == [(104, 105)]


def test_vocab_size_below_the_byte_alphabet_is_an_error():
    with pytest.raises(ValueError, match="vocab_size 256 is smaller than the 256 byte tokens "
                                         "plus 1 special tokens"):
        train_incremental("abc", 256, special_tokens=["<s>"])


@given(text=small_alphabet_texts(), extra=st.integers(0, 40))
def test_incremental_equals_reference_when_pairs_tie(text, extra):
    assert train_incremental(text, 256 + extra) == train_reference(text, 256 + extra)


@given(text=unicode_texts(), extra=st.integers(0, 40))
def test_incremental_equals_reference_on_unicode(text, extra):
    assert train_incremental(text, 256 + extra) == train_reference(text, 256 + extra)


@given(text=small_alphabet_texts("a b", max_size=200), seed=st.integers(0, 2**32 - 1))
def test_incremental_equals_reference_on_repeated_runs(text, seed):
    # Long runs of one byte make overlapping pairs (a, a), the hardest case for the counts.
    rng = np.random.default_rng(seed)
    text = "".join(ch * int(rng.integers(1, 9)) for ch in text)
    assert train_incremental(text, 300) == train_reference(text, 300)


def test_incremental_equals_reference_on_tiny_shakespeare():
    text = load_corpus("tinyshakespeare")[:60_000]
    assert train_incremental(text, 512) == train_reference(text, 512)

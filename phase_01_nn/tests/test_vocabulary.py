import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from phase_01_nn.vocabulary import CharVocabulary, train_val_split


@given(text=st.text(min_size=1, max_size=200))
def test_round_trip_on_any_text(text):
    vocab = CharVocabulary.from_text(text)
    ids = vocab.encode(text)
    assert ids.dtype == np.int64 and len(ids) == len(text)
    assert vocab.decode(ids) == text
    assert vocab.itos == sorted(set(text))


def test_unknown_characters_and_ids_fail_clearly():
    vocab = CharVocabulary.from_text("hello world")
    with pytest.raises(ValueError, match=r"characters \['!', 'H'\] of 'Hello!' are not in"):
        vocab.encode("Hello!")
    with pytest.raises(ValueError, match=r"id 8 is outside the vocabulary \[0, 8\)"):
        vocab.decode([0, 8])
    with pytest.raises(ValueError, match="empty"):
        CharVocabulary.from_text("")
    with pytest.raises(ValueError, match="once"):
        CharVocabulary(["a", "a"])


def test_train_val_split_is_a_contiguous_90_10_cut():
    train, val = train_val_split(np.arange(100))
    np.testing.assert_array_equal(train, np.arange(90))
    np.testing.assert_array_equal(val, np.arange(90, 100))
    with pytest.raises(ValueError, match="too short"):
        train_val_split("a", 0.9)
    with pytest.raises(ValueError, match="train_fraction"):
        train_val_split(np.arange(10), 1.0)

import regex
from hypothesis import given
from hypothesis import strategies as st

from phase_01_nn.corpus import load_corpus
from phase_03_tokenization.pretokenize import (
    GPT2_PATTERN,
    LETTER,
    NUMBER,
    OTHER,
    SPACE,
    character_classes,
    chunk_counts,
    chunk_ends,
    distinct_chunk_arrays,
    distinct_chunks,
    split_gpt2,
    split_on_special_tokens,
)
from phase_03_tokenization.tests.strategies import small_alphabet_texts, unicode_texts


def test_gpt2_split_examples():
    assert split_gpt2("Hello world's  end!!\n\n") == ["Hello", " world", "'s", " ", " end", "!!",
                                                     "\n\n"]
    assert split_gpt2("x   y\t\tz 42") == ["x", "  ", " y", "\t", "\t", "z", " 42"]
    assert split_gpt2("I'LL 'll") == ["I", "'", "LL", " '", "ll"]
    assert split_gpt2("") == []


def test_character_classes_follow_the_regex_module():
    classes = character_classes()
    assert classes[ord("a")] == LETTER and classes[ord("é")] == LETTER
    assert classes[ord("7")] == NUMBER and classes[ord("٣")] == NUMBER
    assert classes[ord("\u00a0")] == SPACE and classes[ord("\x1c")] == OTHER
    assert classes[0x301] == OTHER  # a combining mark is neither a letter nor a number


@given(text=unicode_texts(120))
def test_scanner_equals_the_regex_on_unicode(text):
    assert split_gpt2(text) == regex.findall(GPT2_PATTERN, text)


@given(text=small_alphabet_texts(" \t\n'aA1.srevltmd", 80))
def test_scanner_equals_the_regex_on_spaces_and_contractions(text):
    assert split_gpt2(text) == regex.findall(GPT2_PATTERN, text)


def test_scanner_equals_the_regex_on_tiny_shakespeare():
    text = load_corpus("tinyshakespeare")
    assert split_gpt2(text) == regex.findall(GPT2_PATTERN, text)


def test_special_tokens_split_first_longest_first():
    assert split_on_special_tokens("a<s>b<s2>", ["<s>", "<s2>"]) == [
        ("a", False), ("<s>", True), ("b", False), ("<s2>", True)]
    assert split_on_special_tokens("", ["<s>"]) == []
    assert chunk_counts("hi<s> hi hi", special_tokens=["<s>"]) == {b"hi": 1, b" hi": 2}
    assert chunk_counts("a1b", pattern=r"\d|\D+") == {b"a": 1, b"1": 1, b"b": 1}


def _chunk_bytes(data, ends):
    starts = [0, *ends.tolist()][:-1]
    return [bytes(data[s:e]) for s, e in zip(starts, ends.tolist(), strict=True)]


@given(text=st.one_of(unicode_texts(), small_alphabet_texts("ab 's\n", 80)))
def test_chunk_ends_are_the_regex_chunks_in_bytes(text):
    for pattern in (GPT2_PATTERN, r"\w+|\W"):
        data, ends = chunk_ends(text, pattern)
        assert _chunk_bytes(data, ends) == [c.encode("utf-8")
                                            for c in regex.findall(pattern, text)]


@given(text=st.one_of(unicode_texts(), small_alphabet_texts("ab 's\n", 80)))
def test_distinct_chunk_arrays_equal_the_plain_counts(text):
    """The numba route (hashing byte ranges) against ``chunk_counts`` (a Counter of strings)."""
    data, offsets, weights = distinct_chunk_arrays(text, special_tokens=["ab"])
    ours = dict(zip(_chunk_bytes(data, offsets[1:]), weights.tolist(), strict=True))
    assert ours == chunk_counts(text, special_tokens=["ab"])
    assert len(ours) == len(weights)  # each distinct chunk once


@given(text=small_alphabet_texts("ab c", 40), bits=st.sampled_from([0, 1, 2, 64]))
def test_distinct_chunks_are_exact_even_when_every_hash_collides(text, bits):
    """A mask of 0 to 2 bits forces collisions: the bytes decide, as in the plain dict below."""
    data, ends = chunk_ends(text)
    chunk_of, firsts = distinct_chunks(data, ends, (1 << bits) - 1 if bits < 64 else -1)
    numbering: dict[bytes, int] = {}
    expected = [numbering.setdefault(chunk, len(numbering)) for chunk in _chunk_bytes(data, ends)]
    assert chunk_of.tolist() == expected
    assert [expected[f] for f in firsts.tolist()] == list(range(len(numbering)))

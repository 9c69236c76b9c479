"""Text strategies for the tokenizer tests: arbitrary Unicode, and the awkward cases named."""

from hypothesis import strategies as st

AWKWARD = ["\r\n", "\x00", "\u0301", "e\u0301", "👍🏽", "👨‍👩‍👧", "🇫🇷", "\ufeff", "\u00a0",
           "\u2028", "'s", "'ll", " 's", "  ", "\t\n", "\ufffd", "\U0010ffff", "日本語", "١٢٣"]


def unicode_texts(max_size: int = 60):
    """Arbitrary text (any code point but lone surrogates, which UTF-8 cannot hold), mixed
    with emoji, combining marks, CRLF, NUL and other pieces that break naive tokenizers."""
    pieces = st.one_of(st.text(max_size=8), st.sampled_from(AWKWARD))
    return st.lists(pieces, max_size=max_size // 4).map("".join)


def small_alphabet_texts(alphabet: str = "ab c\n'", max_size: int = 80):
    """Text over a few characters: many pairs tie, which tests the tie rule."""
    return st.text(alphabet=alphabet, max_size=max_size)

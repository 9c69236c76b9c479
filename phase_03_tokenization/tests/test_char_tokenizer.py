import pytest
from hypothesis import given

from phase_03_tokenization.char_tokenizer import CharTokenizer
from phase_03_tokenization.tests.strategies import unicode_texts


@given(text=unicode_texts())
def test_round_trip_on_its_own_text(text):
    if not text:
        return
    tokenizer = CharTokenizer.train(text)
    ids = tokenizer.encode(text)
    assert len(ids) == len(text)
    assert tokenizer.decode(ids) == text


def test_ids_follow_code_point_order():
    tokenizer = CharTokenizer.train("hello\n")
    assert tokenizer.vocab_size == 5
    assert tokenizer.encode("\nhole") == [0, 2, 4, 3, 1]


def test_unknown_characters_and_ids_are_clear_errors():
    tokenizer = CharTokenizer.train("abc")
    with pytest.raises(ValueError, match=r"characters \['z'\] of 'abz' are not in the vocabulary"):
        tokenizer.encode("abz")
    with pytest.raises(ValueError, match=r"id 3 is outside the vocabulary \[0, 3\)"):
        tokenizer.decode([0, 3])


def test_save_load_round_trip_and_bad_file(tmp_path):
    tokenizer = CharTokenizer.train("to be\r\nor not\x00")
    tokenizer.save(tmp_path / "chars.txt")
    loaded = CharTokenizer.load(tmp_path / "chars.txt")
    assert loaded.vocabulary.itos == tokenizer.vocabulary.itos
    (tmp_path / "bad.txt").write_text("tfs-bpe 1\n[]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a character tokenizer"):
        CharTokenizer.load(tmp_path / "bad.txt")
    (tmp_path / "broken.txt").write_text('tfs-char 1\n["a", "a"]\n', encoding="utf-8")
    with pytest.raises(ValueError, match="each character once"):
        CharTokenizer.load(tmp_path / "broken.txt")

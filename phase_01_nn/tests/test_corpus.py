import hashlib
import os

import pytest

from phase_01_nn.corpus import (
    CORPORA,
    Corpus,
    CorpusNotFoundError,
    corpus_path,
    fetch,
    load_corpus,
)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No data dir, an empty cache: nothing is found unless the test puts it there."""
    monkeypatch.delenv("TFS_DATA_DIR", raising=False)
    monkeypatch.setenv("TFS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def _corpus_at(source, text="hello corpus\n"):
    source.write_text(text, encoding="utf-8")
    digest = hashlib.sha256(text.encode()).hexdigest()
    return Corpus("toy", "toy/toy.txt", source.as_uri(), digest)


def test_explicit_path_wins(isolated):
    path = isolated / "mine.txt"
    path.write_text("abc", encoding="utf-8")
    assert load_corpus("names", path) == "abc"
    with pytest.raises(CorpusNotFoundError, match="no file at the given path"):
        load_corpus("names", isolated / "missing.txt")


def test_data_dir_is_used_and_hash_checked(isolated, monkeypatch):
    corpus = _corpus_at(isolated / "source.txt")
    data = isolated / "data"
    (data / "toy").mkdir(parents=True)
    (data / "toy" / "toy.txt").write_text("hello corpus\n", encoding="utf-8")
    monkeypatch.setenv("TFS_DATA_DIR", str(data))
    assert fetch(corpus) == data / "toy" / "toy.txt"
    (data / "toy" / "toy.txt").write_text("tampered\n", encoding="utf-8")
    with pytest.raises(ValueError, match="does not have the expected SHA-256 for 'toy'"):
        fetch(corpus)


def test_download_into_cache_then_reuse(isolated):
    corpus = _corpus_at(isolated / "source.txt")
    path = fetch(corpus)
    assert path == isolated / "cache" / "toy" / "toy.txt"
    assert path.read_text(encoding="utf-8") == "hello corpus\n"
    (isolated / "source.txt").unlink()
    assert fetch(corpus) == path  # found in the cache, no second download


def test_download_with_wrong_hash_saves_nothing(isolated):
    corpus = _corpus_at(isolated / "source.txt")
    wrong = Corpus(corpus.name, corpus.filename, corpus.url, "0" * 64)
    with pytest.raises(ValueError, match="nothing was saved"):
        fetch(wrong)
    assert not list((isolated / "cache").rglob("*.txt*"))


def test_offline_error_says_which_file_to_put_where(isolated, monkeypatch):
    monkeypatch.setenv("TFS_DATA_DIR", str(isolated / "data"))
    corpus = Corpus("toy", "toy.txt", (isolated / "nowhere.txt").as_uri(), "0" * 64)
    with pytest.raises(CorpusNotFoundError) as error:
        fetch(corpus)
    message = str(error.value)
    assert "the download failed" in message
    assert str(isolated / "data" / "toy.txt") in message
    assert str(isolated / "cache" / "toy.txt") in message
    assert "TFS_DATA_DIR" in message and corpus.url in message


def test_no_download_when_turned_off(isolated):
    with pytest.raises(CorpusNotFoundError, match="downloads are turned off.*names.txt"):
        corpus_path("names", download=False)


def test_unknown_name(isolated):
    with pytest.raises(ValueError, match="unknown corpus 'shakespeare'; choose one of: "):
        load_corpus("shakespeare")


@pytest.mark.skipif(not os.environ.get("TFS_DATA_DIR"), reason="TFS_DATA_DIR is not set")
@pytest.mark.parametrize("name", sorted(CORPORA))
def test_shared_data_matches_the_registered_hashes(name):
    assert corpus_path(name, download=False).is_file()

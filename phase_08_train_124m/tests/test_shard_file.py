import numpy as np
import pytest

from phase_08_train_124m.shard_file import (
    HEADER_BYTES,
    MAGIC,
    ShardFormatError,
    read_header,
    read_shard,
    write_shard,
)


def test_a_shard_round_trips_with_the_llm_c_header(tmp_path):
    tokens = np.array([0, 1, 50256, 65535, 7], dtype=np.int64)
    path = write_shard(tmp_path / "a.bin", tokens)
    raw = path.read_bytes()
    assert len(raw) == HEADER_BYTES + 2 * len(tokens)
    assert np.frombuffer(raw[:12], dtype="<i4").tolist() == [20240520, 1, 5]
    assert read_header(path) == 5
    assert read_shard(path).tolist() == tokens.tolist()
    assert not (tmp_path / "a.bin.tmp").exists()


def test_ids_that_do_not_fit_uint16_are_refused(tmp_path):
    with pytest.raises(ValueError, match="fit uint16"):
        write_shard(tmp_path / "a.bin", [1, 65536])
    with pytest.raises(ValueError, match="1-D"):
        write_shard(tmp_path / "a.bin", [[1, 2]])


def _corrupt(tmp_path, edit):
    path = write_shard(tmp_path / "a.bin", np.arange(10))
    raw = bytearray(path.read_bytes())
    path.write_bytes(bytes(edit(raw)))
    return path


def test_a_wrong_magic_number_is_named(tmp_path):
    path = _corrupt(tmp_path, lambda raw: b"\x01\x00\x00\x00" + raw[4:])
    with pytest.raises(ShardFormatError,
                       match=f"starts with 1, not the shard magic number {MAGIC}"):
        read_shard(path)


def test_a_wrong_version_is_named(tmp_path):
    path = _corrupt(tmp_path, lambda raw: raw[:4] + b"\x02\x00\x00\x00" + raw[8:])
    with pytest.raises(ShardFormatError, match="version 2"):
        read_shard(path)


def test_a_truncated_shard_is_caught(tmp_path):
    path = _corrupt(tmp_path, lambda raw: raw[:-2])
    with pytest.raises(ShardFormatError, match="says it holds 10 tokens .* truncated"):
        read_shard(path)


def test_a_file_shorter_than_the_header_is_caught(tmp_path):
    path = tmp_path / "notes.bin"
    path.write_bytes(b"hello")
    with pytest.raises(ShardFormatError, match="shorter than the 1024-byte shard header"):
        read_header(path)
    with pytest.raises(FileNotFoundError, match="no shard at"):
        read_header(tmp_path / "missing.bin")

import numpy as np
import pytest
import torch

from phase_08_train_124m.loader import ShardLoader, split_paths
from phase_08_train_124m.shard_file import write_shard

SIZES = (10, 7, 13)


@pytest.fixture
def shards(tmp_path):
    """Three shards whose concatenation is 0, 1, ..., 29: each token is its stream position."""
    paths, start = [], 0
    for i, size in enumerate(SIZES):
        paths.append(write_shard(tmp_path / f"train_{i:06d}.bin", np.arange(start, start + size)))
        start += size
    return paths


def test_windows_cross_shard_boundaries_as_one_stream(shards):
    loader = ShardLoader(shards, batch_size=2, block_size=3)
    seen = []
    for _ in range(4):
        x, y = loader.next_batch()
        assert x.dtype == torch.int64 and x.shape == (2, 3)
        assert torch.equal(y.reshape(-1)[:-1], x.reshape(-1)[1:])
        seen.append(x.reshape(-1).tolist() + [y[-1, -1].item()])
    # position p reads stream[p : p + 7]; batch 1 spans shards 0 and 1, batch 2 shards 1 and 2
    assert seen == [list(range(p, p + 7)) for p in (0, 6, 12, 18)]


def test_two_ranks_together_read_what_one_rank_reads_in_two_micro_steps(shards):
    single = ShardLoader(shards, 1, 4)
    ranks = [ShardLoader(shards, 1, 4, rank=r, world_size=2) for r in range(2)]
    for _ in range(3):  # the whole epoch of the 2-rank job: steps at 0, 8 and 16
        for rank in ranks:
            x, y = rank.next_batch()
            expect_x, expect_y = single.next_batch()
            assert torch.equal(x, expect_x) and torch.equal(y, expect_y)
    assert [rank.next_batch()[0][0, 0].item() for rank in ranks] == [0, 4]  # both wrap
    assert ranks[0].epoch == ranks[1].epoch == 1


def test_the_stream_wraps_to_the_start_with_a_new_epoch(shards):
    loader = ShardLoader(shards, 2, 4)  # 8 tokens a step, 9 read: steps at 0, 8, 16, then 0
    starts = [loader.next_batch()[0][0, 0].item() for _ in range(4)]
    assert starts == [0, 8, 16, 0]
    assert loader.epoch == 1


def test_a_restored_loader_continues_exactly(shards):
    loader = ShardLoader(shards, 2, 3, rank=1, world_size=2)
    for _ in range(3):
        loader.next_batch()
    state = loader.state_dict()
    expected = [loader.next_batch() for _ in range(4)]
    restored = ShardLoader(shards, 2, 3, rank=1, world_size=2)
    restored.load_state_dict(state)
    for (x, y), (ex, ey) in zip((restored.next_batch() for _ in range(4)), expected, strict=True):
        assert torch.equal(x, ex) and torch.equal(y, ey)


def test_restoring_a_position_saved_on_other_shards_fails(shards):
    state = ShardLoader(shards, 2, 3).state_dict()
    with pytest.raises(ValueError, match="same data directory"):
        ShardLoader(shards[:2], 2, 3).load_state_dict(state)


def test_too_few_tokens_and_foreign_ids_fail_clearly(shards, tmp_path):
    with pytest.raises(ValueError, match=r"hold 30 tokens, fewer than one micro-step needs.*= 33"):
        ShardLoader(shards, 4, 4, world_size=2)
    loader = ShardLoader(shards, 2, 3, vocab_size=15)
    loader.next_batch()
    loader.next_batch()  # ids 6 to 12
    with pytest.raises(ValueError, match=r"token id 18 .*\[12, 19\) is outside the model's "
                                         r"vocabulary of 15"):
        loader.next_batch()
    with pytest.raises(ValueError, match="rank must be in"):
        ShardLoader(shards, 2, 3, rank=2, world_size=2)


def test_split_paths_finds_shards_in_name_order_or_says_how_to_make_them(shards, tmp_path):
    assert split_paths(tmp_path, "train") == shards
    with pytest.raises(FileNotFoundError, match="no val_.*prepare"):
        split_paths(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match="no data directory"):
        split_paths(tmp_path / "absent", "train")

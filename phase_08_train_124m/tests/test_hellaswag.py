import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from phase_07_gpt.model import GPT, GPTConfig
from phase_08_train_124m.hellaswag import (
    ending_losses,
    evaluate,
    find_hellaswag,
    missing_message,
    read_examples,
    render,
)


def letters(text):
    """A toy tokenizer: one id per letter, spaces dropped."""
    return [ord(c) - ord("a") for c in text if c != " "]


class NextLetter(torch.nn.Module):
    """A 'model' that is sure each letter is followed by the next one in the alphabet."""

    config = SimpleNamespace(block_size=64)

    def forward(self, idx):
        return 10.0 * F.one_hot((idx + 1) % 26, 26).float(), None


@pytest.fixture
def examples_file(tmp_path):
    rows = [{"ctx": "abc", "endings": ["def", "xyz", "dzz", "qrs"], "label": 0},
            {"ctx": "mn", "endings": ["z", "yy", "op qrsz", "xx"], "label": 2},
            {"ctx": "k", "endings": ["lmn", "xx", "yy", "zz"], "label": 3}]  # a wrong label
    path = tmp_path / "hellaswag_val.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_the_ending_with_the_lowest_mean_loss_is_chosen(examples_file):
    examples = read_examples(examples_file)
    assert evaluate(NextLetter(), examples, letters, "cpu") == (2, 3)
    # "z" and "opqrsz" each hold one wrong letter: the sum of losses would pick the short one,
    # the mean picks the long one, which is right
    losses = ending_losses(NextLetter(), *render(examples[1], letters))
    assert losses[2] < losses[0] < 6 * losses[2]


def test_ranks_split_the_examples_and_their_counts_add_up(examples_file):
    examples = read_examples(examples_file)
    parts = [evaluate(NextLetter(), examples, letters, "cpu", rank=r, world_size=2)
             for r in range(2)]
    assert parts == [(1, 2), (1, 1)]


def test_batched_scores_equal_scoring_each_ending_alone():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=26, block_size=16, n_layer=1, n_head=2, n_embd=8)).eval()
    example = {"context": "hello world", "endings": ["abc", "de", "fghij", "k"], "label": 0}
    tokens, mask = render(example, letters)
    assert mask.sum(dim=1).tolist() == [3, 2, 5, 1]
    batched = ending_losses(model, tokens, mask)
    context = letters(example["context"])
    for i, ending in enumerate(example["endings"]):
        row = torch.tensor([context + letters(ending)])
        logits, _ = model(row[:, :-1])
        alone = F.cross_entropy(logits[0, len(context) - 1:], row[0, len(context):])
        assert batched[i].item() == pytest.approx(alone.item(), rel=1e-5)


def test_bad_files_and_a_missing_file_are_explained(tmp_path, monkeypatch):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"ctx": "a", "endings": ["b"], "label": 0}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl:1 needs 4 endings"):
        read_examples(path)
    path.write_text('{"context": "a"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl:1 is not a HellaSwag example"):
        read_examples(path)
    monkeypatch.setenv("TFS_DATA_DIR", str(tmp_path))
    assert find_hellaswag() is None
    assert "no file at" in missing_message() and "hellaswag_val.jsonl" in missing_message()
    with pytest.raises(FileNotFoundError, match="no HellaSwag file"):
        find_hellaswag(str(tmp_path / "absent.jsonl"))

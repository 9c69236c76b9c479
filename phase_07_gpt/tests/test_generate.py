import pytest
import torch

from phase_03_tokenization.char_tokenizer import CharTokenizer
from phase_07_gpt.generate import filter_logits, generate
from phase_07_gpt.model import GPT, GPTConfig


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=12, block_size=8, n_layer=1, n_head=2, n_embd=16))


def test_top_k_and_top_p_keep_the_right_tokens():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isfinite(filter_logits(logits, top_k=2)).tolist() == [[True, True, False, False]]
    kept = torch.isfinite(filter_logits(logits, top_p=0.7)).tolist()
    assert kept == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.01)).sum() == 1
    assert torch.isfinite(filter_logits(logits, top_p=1.0)).all()


def test_a_seed_reproduces_a_sample_and_the_context_is_cropped(model):
    prompt = torch.tensor([[1, 2, 3]])
    a = generate(model, prompt, 20, seed=7, top_k=5, top_p=0.9, temperature=0.8)
    b = generate(model, prompt, 20, seed=7, top_k=5, top_p=0.9, temperature=0.8)
    c = generate(model, prompt, 20, seed=8, top_k=5, top_p=0.9, temperature=0.8)
    assert a.shape == (1, 23) and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a[:, :3], prompt)


def test_temperature_zero_is_greedy(model):
    out = generate(model, torch.tensor([[4]]), 5, temperature=0)
    ids = torch.tensor([[4]])
    for _ in range(5):
        nxt = model(ids)[0][:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], dim=1)
    assert torch.equal(out, ids)


def test_generation_stops_at_the_end_token(model):
    out = generate(model, torch.tensor([[4]]), 50, temperature=0)
    stop = int(out[0, 3])
    stopped = generate(model, torch.tensor([[4]]), 50, temperature=0, stop_token=stop)
    first = (stopped[0, 1:] == stop).nonzero()[0].item() + 1
    assert stopped.shape[1] == first + 1 and stopped[0, -1] == stop


def test_bad_options_fail_clearly(model):
    prompt = torch.tensor([[1]])
    with pytest.raises(ValueError, match="temperature"):
        generate(model, prompt, 2, temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        generate(model, prompt, 2, top_p=0)
    with pytest.raises(ValueError, match=r"prompt ids must be in \[0, 12\)"):
        generate(model, torch.tensor([[12]]), 2)


def test_char_tokens_round_trip_through_generation(model):
    tokenizer = CharTokenizer.train("abcdefghijkl")
    prompt = torch.tensor([tokenizer.encode("abc")])
    text = tokenizer.decode(generate(model, prompt, 10, seed=0)[0].tolist())
    assert text.startswith("abc") and len(text) == 13


def test_gpt2_bpe_tokens_through_generation():
    from phase_01_nn.corpus import CorpusNotFoundError
    from phase_07_gpt.dataset import gpt2_tokenizer
    from phase_07_gpt.sample import sample_text

    try:
        tokenizer = gpt2_tokenizer()
    except CorpusNotFoundError:
        pytest.skip("GPT-2's vocab.bpe and encoder.json are not available offline")
    assert tokenizer.vocab_size == 50257
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=50257, block_size=16, n_layer=1, n_head=1, n_embd=8))
    text = sample_text(gpt, tokenizer, "Hello world", max_new_tokens=6, seed=1, top_k=50)[0]
    assert text.startswith("Hello world")
    greedy = generate(gpt, torch.tensor([tokenizer.encode("Hello")]), 40, temperature=0)
    stop_text = tokenizer.decode([int(greedy[0, 2])])
    if len(tokenizer.encode(stop_text)) == 1:
        short = sample_text(gpt, tokenizer, "Hello", max_new_tokens=40, temperature=0,
                            stop=stop_text)[0]
        assert short.endswith(stop_text) and len(short) < len(tokenizer.decode(greedy[0].tolist()))
    with pytest.raises(ValueError, match="must be one"):
        sample_text(gpt, tokenizer, "Hello", stop="Hello world again")

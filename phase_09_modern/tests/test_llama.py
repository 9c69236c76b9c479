"""The LLaMA-style model against transformers' own Llama and Mistral, offline: random small
models are built from configs, their weights loaded into ours; then the cache's properties."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from phase_09_modern.models.kv_cache import KVCache, attention_mask
from phase_09_modern.models.llama import Llama, LlamaConfig
from phase_09_modern.models.llama_checkpoints import config_from_hf

transformers = pytest.importorskip("transformers")

SMALL = dict(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=48, max_position_embeddings=64, attn_implementation="eager")
CASES = {
    "llama-gqa": (transformers.LlamaConfig, transformers.LlamaForCausalLM,
                  dict(num_key_value_heads=2)),
    "llama-mqa-tied": (transformers.LlamaConfig, transformers.LlamaForCausalLM,
                       dict(num_key_value_heads=1, tie_word_embeddings=True, rope_theta=500.0)),
    "mistral-window": (transformers.MistralConfig, transformers.MistralForCausalLM,
                       dict(num_key_value_heads=2, sliding_window=5)),
}


def _hf_model(case):
    config_cls, model_cls, extra = CASES[case]
    torch.manual_seed(0)
    model = model_cls(config_cls(**SMALL, **extra)).eval()
    with torch.no_grad():  # larger random weights than HF's init: confident, distinct logits
        for name, param in model.named_parameters():
            if "norm" in name:
                param.normal_(1.0, 0.3)
            else:
                param.normal_(0.0, 0.15)
    return model


@pytest.fixture(scope="module", params=sorted(CASES))
def pair(request):
    reference = _hf_model(request.param)
    return request.param, reference, Llama.from_hf(reference).eval()


def _ids(b=2, t=20, seed=1, vocab=97):
    return torch.randint(0, vocab, (b, t), generator=torch.Generator().manual_seed(seed))


def test_config_read_from_transformers(pair):
    case, reference, model = pair
    config = model.config
    assert (config.n_head, config.head_dim, config.d_ff) == (4, 8, 48)
    assert config.n_kv_head == reference.config.num_key_value_heads
    assert config.sliding_window == (5 if case == "mistral-window" else None)
    assert config.tie_weights == (case == "llama-mqa-tied")
    assert config.rope_theta == (500.0 if case == "llama-mqa-tied" else 10000.0)


def test_logits_match_transformers(pair):
    _, reference, model = pair
    ids = _ids()  # 20 tokens: longer than Mistral's window of 5
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[0], reference(ids).logits, rtol=0, atol=1e-5)


def test_cached_greedy_generation_matches_transformers(pair):
    _, reference, model = pair
    prompt = _ids(t=6, seed=2)
    expected = reference.generate(prompt, max_new_tokens=24, do_sample=False, pad_token_id=0)
    ours = model.generate(prompt, 24, temperature=0)
    assert torch.equal(ours, expected)
    assert len(set(ours[0, 6:].tolist())) > 3  # not one token repeated: the test can tell


@pytest.mark.parametrize("chunk", [None, 1, 4])
def test_cached_logprobs_equal_rescoring_in_one_pass(pair, chunk):
    _, _, model = pair
    prompt = _ids(t=11, seed=3)
    ids, logprobs = model.generate(prompt, 30, temperature=0, prefill_chunk=chunk,
                                   return_logprobs=True)
    with torch.no_grad():
        rescored = model(ids)[0].log_softmax(-1)[:, 10:-1].gather(2, ids[:, 11:, None])[..., 0]
    torch.testing.assert_close(logprobs, rescored, rtol=0, atol=1e-5)


def test_cache_and_no_cache_sample_the_same_tokens(pair):
    _, _, model = pair
    prompt = _ids(t=3, seed=4)
    cached = model.generate(prompt, 25, temperature=1.0, top_k=20, seed=7)
    uncached = model.generate(prompt, 25, temperature=1.0, top_k=20, seed=7, use_cache=False)
    assert torch.equal(cached, uncached)
    other_seed = model.generate(prompt, 25, temperature=1.0, top_k=20, seed=8)
    assert not torch.equal(cached, other_seed)


def test_loads_from_a_saved_directory(tmp_path):
    reference = _hf_model("mistral-window")
    reference.save_pretrained(tmp_path, safe_serialization=True)
    model = Llama.from_hf(tmp_path, block_size=32).eval()
    assert model.config.block_size == 32
    ids = _ids(t=32, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[0], reference(ids).logits, rtol=0, atol=1e-5)


def test_the_sliding_cache_is_a_ring_of_window_slots():
    config = LlamaConfig(vocab_size=11, block_size=40, n_layer=1, n_head=2, n_kv_head=1,
                         n_embd=8, d_ff=16, sliding_window=4)
    model = Llama(config).eval()
    cache = KVCache(config, batch=1, max_len=40)
    assert cache.layers[0].k.shape == (1, 1, 4, 4)
    with torch.no_grad():
        model(_ids(1, 7, vocab=11), cache=cache)
        model(_ids(1, 1, seed=9, vocab=11), cache=cache)
    assert cache.length == 8 and cache.slots_in_use() == 4
    assert sorted(cache.layers[0].positions.tolist()) == [4, 5, 6, 7]


def test_attention_mask_window_and_empty_slots():
    q = torch.arange(3, 6)
    k = torch.tensor([-1, 0, 1, 2, 3, 4, 5])
    mask = attention_mask(q, k, window=2)
    assert mask.tolist() == [[False, False, False, True, True, False, False],
                             [False, False, False, False, True, True, False],
                             [False, False, False, False, False, True, True]]
    assert attention_mask(q, k, None)[2].tolist() == [False] + [True] * 6


def test_inspect_weights_respect_the_window():
    config = LlamaConfig(vocab_size=11, block_size=16, n_layer=2, n_head=4, n_kv_head=2,
                         n_embd=16, d_ff=24, sliding_window=3)
    model = Llama(config)
    ids = _ids(2, 10, vocab=11)
    seen = model.inspect(ids)
    weights = seen["attention"][1]
    assert weights.shape == (2, 4, 10, 10)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 10))
    too_far = ~attention_mask(torch.arange(10), torch.arange(10), 3)
    assert weights[..., too_far].abs().max() == 0
    with torch.no_grad():
        torch.testing.assert_close(seen["logits"], model(ids)[0], rtol=0, atol=1e-5)


def test_tied_head_shares_wte_and_counts_once():
    config = LlamaConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_kv_head=4,
                         n_embd=128, d_ff=344, tie_weights=True)
    model = Llama(config)
    assert model.lm_head.weight is model.transformer.wte.weight
    # per block: 4 C^2 attention + 3 C d_ff SwiGLU + 2 C gains; plus wte and the final gain
    assert model.num_params() == 4 * (4 * 128 * 128 + 3 * 128 * 344 + 2 * 128) + 65 * 128 + 128
    gqa = Llama(LlamaConfig(**{**config.to_dict(), "n_kv_head": 1, "head_dim": None}))
    assert model.num_params() - gqa.num_params() == 4 * 2 * 128 * (128 - 32)


@pytest.mark.parametrize("bad, message", [
    (dict(n_head=4, n_kv_head=3), "not divisible by n_kv_head"),
    (dict(n_embd=30, n_head=4, n_kv_head=4), "not divisible by n_head"),
    (dict(head_dim=7), "positive even integer"),
    (dict(n_layer=0), "n_layer must be a positive integer"),
    (dict(sliding_window=0), "sliding_window must be None or a positive integer"),
    (dict(dropout=1.0), "dropout must be in"),
    (dict(norm_eps=0.0), "norm_eps must be > 0"),
    (dict(init="xavier"), "init must be one of"),
])
def test_a_bad_config_fails_clearly(bad, message):
    with pytest.raises(ValueError, match=message):
        LlamaConfig(**{"vocab_size": 10, "block_size": 8, **bad})


def test_bad_generation_requests_fail_clearly():
    model = Llama(LlamaConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_kv_head=2,
                              n_embd=8, d_ff=8))
    with pytest.raises(ValueError, match="exceed block_size = 8"):
        model.generate(torch.zeros(1, 5, dtype=torch.long), 4)
    with pytest.raises(ValueError, match=r"prompt ids must be in \[0, 10\)"):
        model.generate(torch.full((1, 2), 10), 1)
    with pytest.raises(ValueError, match="prefill_chunk must be a positive integer"):
        model.generate(torch.zeros(1, 2, dtype=torch.long), 1, prefill_chunk=0)
    cache = KVCache(model.config, batch=1, max_len=4)
    with pytest.raises(ValueError, match="exceed the cache of 4 tokens"):
        model(torch.zeros(1, 5, dtype=torch.long), cache=cache)


def test_unsupported_hf_configs_fail_clearly():
    base = {"model_type": "llama", "vocab_size": 10, "max_position_embeddings": 8,
            "num_hidden_layers": 1, "num_attention_heads": 2, "hidden_size": 8,
            "intermediate_size": 8}
    assert config_from_hf(base)["n_kv_head"] == 2
    with pytest.raises(ValueError, match="model_type 'gpt2' is not supported"):
        config_from_hf({**base, "model_type": "gpt2"})
    with pytest.raises(ValueError, match="hidden_act 'gelu' is not supported"):
        config_from_hf({**base, "hidden_act": "gelu"})
    with pytest.raises(ValueError, match="RoPE scaling"):
        config_from_hf({**base, "rope_parameters": {"rope_type": "llama3", "factor": 8.0}})


@settings(max_examples=15)
@given(window=st.one_of(st.none(), st.integers(1, 9)), kv=st.sampled_from([1, 2, 4]),
       chunks=st.lists(st.integers(1, 7), min_size=1, max_size=6), seed=st.integers(0, 99))
def test_any_chunking_of_a_cached_pass_equals_one_uncached_pass(window, kv, chunks, seed):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=13, block_size=48, n_layer=2, n_head=4, n_kv_head=kv,
                         n_embd=16, d_ff=24, sliding_window=window)
    model = Llama(config).eval()
    ids = _ids(2, sum(chunks), seed=seed, vocab=13)
    cache = KVCache(config, batch=2, max_len=sum(chunks))
    with torch.no_grad():
        pieces = [model(part, cache=cache)[0] for part in ids.split(chunks, dim=1)]
        torch.testing.assert_close(torch.cat(pieces, dim=1), model(ids)[0], rtol=0, atol=1e-5)
    assert cache.length == sum(chunks)


@pytest.mark.parametrize("window", [None, 4])
def test_changing_future_tokens_leaves_earlier_logits_alone(window):
    """The training path (no cache) is causal: the 0.22-nat gain over the GPT in chapter 14 is
    not a peek at the answers."""
    torch.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=65, block_size=64, n_layer=2, n_head=4, n_kv_head=2,
                              n_embd=32, d_ff=64, sliding_window=window)).eval()
    x = torch.randint(0, 65, (2, 16))
    y = x.clone()
    y[:, 10:] = (x[:, 10:] + 1) % 65
    with torch.no_grad():
        lx, ly = model(x)[0], model(y)[0]
    assert torch.equal(lx[:, :10], ly[:, :10])
    assert not torch.allclose(lx[:, 10:], ly[:, 10:])

"""rlev.rollout: our decoding loop against transformers' generate, exact sampling, scoring in buckets."""

import pytest
import torch

from conftest import save_gpt2
from rlev.data.synthetic import generate as synthetic_exams
from rlev.model import build_tiny, load_policy, render_prompt, train_tokenizer
from rlev.rollout import _next_tokens, batch_logprobs, generate, length_buckets, response_logprobs


@pytest.fixture(scope="module")
def exams():
    records, demos = synthetic_exams(3, 0, 6, seed=5)
    return records, demos


@pytest.fixture(scope="module")
def qwen2(tmp_path_factory, exams):
    records, demos = exams
    texts = [r["question"] for r in records] + [d["worked"] for d in demos]
    out = tmp_path_factory.mktemp("qwen2")
    build_tiny(
        texts,
        dict(
            vocab_size=290,
            hidden_size=32,
            num_layers=1,
            num_heads=2,
            num_kv_heads=1,
            intermediate_size=64,
            max_position=128,
        ),
        out,
        seed=1,
    )
    model, tokenizer = load_policy(out, "cpu")
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory, exams):
    """A differently built causal LM: GPT-2 blocks, learned positions, no GQA."""
    records, demos = exams
    tokenizer = train_tokenizer([r["question"] for r in records] + [d["worked"] for d in demos], 280)
    out = save_gpt2(tokenizer, tmp_path_factory.mktemp("gpt2"), n_positions=128, seed=2)
    model, tokenizer = load_policy(out, "cpu")
    return model.eval(), tokenizer


def make_eos_likely(model, tokenizer, bias: float):
    """Random weights rarely emit eos; raising its logit makes responses end at varied lengths."""
    head = model.get_output_embeddings()
    with torch.no_grad():
        head.weight[tokenizer.eos_token_id] += bias * head.weight.mean(0).sign()


def prompts_for(tokenizer, exams, k=5):
    records, _ = exams
    # prompts of different lengths, so left padding matters
    return [render_prompt(tokenizer, r["question"]) for r in records[:k]]


@pytest.mark.parametrize("which", ["qwen2", "gpt2"])
def test_greedy_decoding_matches_transformers_generate(which, request, exams):
    model, tokenizer = request.getfixturevalue(which)
    prompts = prompts_for(tokenizer, exams)
    ours = generate(model, tokenizer, prompts, n=1, max_new_tokens=24, do_sample=False)
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    theirs = model.generate(
        **enc,
        max_new_tokens=24,
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    assert torch.equal(ours.sequences, theirs[:, : ours.sequences.shape[1]])
    assert (theirs[:, ours.sequences.shape[1] :] == tokenizer.pad_token_id).all()  # nothing after the longest


def test_responses_that_end_leave_the_batch_and_masks_are_right(qwen2, exams):
    model, tokenizer = qwen2
    make_eos_likely(model, tokenizer, 0.3)  # 0.05 stopped giving varied lengths once the exams changed
    try:
        torch.manual_seed(0)
        ro = generate(model, tokenizer, prompts_for(tokenizer, exams), n=6, max_new_tokens=20)
    finally:
        make_eos_likely(model, tokenizer, -0.3)
    ended = ~ro.truncated
    assert ended.any() and ro.truncated.any(), "the test needs both kinds of response"
    assert len(set(ro.lengths.tolist())) > 2
    mask_len = ro.response_mask.sum(1).cpu()
    assert torch.equal(mask_len[ended], ro.lengths[ended] + 1)  # eos is in the mask
    assert torch.equal(mask_len[~ended], ro.lengths[~ended])
    assert (ro.lengths[~ended] == 20).all()
    response = ro.sequences[:, ro.prompt_len :]
    assert (response[ro.response_mask == 0] == tokenizer.pad_token_id).all()
    eos_at = response[ended].gather(1, ro.lengths[ended][:, None]).squeeze(1)
    assert (eos_at == tokenizer.eos_token_id).all()


def test_same_seed_same_samples(qwen2, exams):
    model, tokenizer = qwen2
    prompts = prompts_for(tokenizer, exams)
    texts = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        texts.append(generate(model, tokenizer, prompts, n=4, max_new_tokens=12).texts)
    assert texts[0] == texts[1] and texts[0] != texts[2]


def test_sampling_draws_from_the_softmax():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, float("-inf")]]).repeat(40000, 1)
    torch.manual_seed(0)
    for temperature in (1.0, 0.5):
        draws = _next_tokens(logits, True, temperature)
        freq = torch.bincount(draws, minlength=5).float() / len(draws)
        expected = torch.softmax(logits[0] / temperature, -1)
        assert (freq - expected).abs().max() < 0.01
        assert freq[4] == 0  # a token of probability 0 is never drawn
    assert (_next_tokens(logits[:3], False, 1.0) == 0).all()


def test_scoring_in_length_buckets_equals_one_pass(qwen2, exams):
    model, tokenizer = qwen2
    make_eos_likely(model, tokenizer, 0.05)
    try:
        torch.manual_seed(1)
        ro = generate(model, tokenizer, prompts_for(tokenizer, exams), n=4, max_new_tokens=16)
    finally:
        make_eos_likely(model, tokenizer, -0.05)
    budget = 4 * (ro.prompt_len + 8)
    buckets = length_buckets(ro, budget)
    assert len(buckets) > 1
    assert sorted(torch.cat(buckets).tolist()) == list(range(len(ro.texts)))  # every row once
    for rows in buckets:
        sub = ro.select(rows)
        assert len(rows) == 1 or len(rows) * (ro.prompt_len + sub.response_len) <= budget
    mask = ro.response_mask.bool()
    with torch.no_grad():
        whole = response_logprobs(model, ro)
    bucketed = batch_logprobs(model, ro, 1.0, budget)
    assert torch.allclose(whole[mask], bucketed[mask], atol=1e-5)
    assert (bucketed[~mask] == 0).all()


def test_logprobs_use_the_sampling_temperature(qwen2, exams):
    model, tokenizer = qwen2
    torch.manual_seed(0)
    ro = generate(model, tokenizer, prompts_for(tokenizer, exams, 2), n=2, max_new_tokens=6)
    with torch.no_grad():
        logp, entropy = response_logprobs(model, ro, temperature=0.5, with_entropy=True)
        sequences, mask = ro.sequences, ro.attention_mask
        logits = (
            model(input_ids=sequences, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits[
                :, ro.prompt_len - 1 : -1
            ]
            / 0.5
        )
    expected = torch.log_softmax(logits, -1).gather(-1, sequences[:, ro.prompt_len :, None]).squeeze(-1)
    assert torch.allclose(logp, expected, atol=1e-5)
    p = torch.softmax(logits, -1)
    assert torch.allclose(entropy, -(p * p.log()).sum(-1), atol=1e-4)


def test_a_response_stops_at_generation_configs_eos_ids_too(qwen2, exams):
    """vLLM stops at the tokenizer's eos and at every generation_config eos id (Qwen2.5-Instruct:
    <|im_end|> and <|endoftext|>); local generation must too, or it runs on past the answer."""
    model, tokenizer = qwen2
    prompts = prompts_for(tokenizer, exams, k=3)
    free = generate(model, tokenizer, prompts, n=1, max_new_tokens=12, do_sample=False)
    first = free.sequences[0, free.prompt_len].item()  # the token greedy decoding emits first on prompt 0
    assert first != tokenizer.eos_token_id
    saved = model.generation_config.eos_token_id
    try:
        model.generation_config.eos_token_id = [tokenizer.eos_token_id, first]
        stopped = generate(model, tokenizer, prompts, n=1, max_new_tokens=12, do_sample=False)
    finally:
        model.generation_config.eos_token_id = saved
    assert stopped.lengths[0] == 0 and not stopped.truncated[0] and stopped.texts[0] == ""
    assert stopped.response_mask[0, 0] == 1 and stopped.response_mask[0, 1:].sum() == 0  # the stop token only
    for row in range(1, 3):  # the other prompts stop at their first `first` token, or are unchanged
        ids = free.sequences[row, free.prompt_len :].tolist()[: int(free.lengths[row])]
        expected = ids.index(first) if first in ids else int(free.lengths[row])
        assert stopped.lengths[row] == expected

"""The approximate rollout engine (spg_lib.decoding.cached): KV-cache modes, threshold unmasking, early stop,
token-forward counts, fallback. Exactness is checked in float64 on the tiny LLaDA model (docs/decoding.md)."""

from __future__ import annotations

import warnings

import pytest
import torch

from spg_lib.decoding import generate, generate_reference
from spg_lib.models import LLaDAModelLM, init_tiny_model
from spg_lib.models.capabilities import probe
from spg_lib.tasks.evaluate import EvalConfig
from spg_lib.training.config import LoRASettings, RolloutConfig
from tests.decoding.conftest import DoubleLM, left_padded, model_prompts


@pytest.fixture(scope="module")
def tiny() -> LLaDAModelLM:
    return init_tiny_model(seed=0).double()




def _kw(model, **over):
    kw = {"gen_length": 12, "block_length": 4, "steps": 6, "mask_id": model.config.mask_token_id}
    kw.update(over)
    return kw


def _record_logits(model, monkeypatch) -> list[torch.Tensor]:
    """Every [N, V] logits tensor the sampler computes through the hidden-state head, in call order."""
    seen: list[torch.Tensor] = []
    original = model.logits_from_hidden

    def recording(hidden, out=None):
        logits = original(hidden, out=out)
        seen.append(logits.detach().clone())
        return logits

    monkeypatch.setattr(model, "logits_from_hidden", recording)
    return seen


def test_cached_forward_equals_full_forward_with_a_fresh_cache(tiny) -> None:
    assert probe(tiny).kv_cache
    ids, mask = model_prompts(tiny, [10, 6, 13])
    T = ids.shape[1]
    with torch.no_grad():
        full = tiny.hidden_states(ids, mask)  # [B, T, D]
        h, cache = tiny.hidden_states_kv(ids, mask, output_range=(7, 11))
        assert torch.equal(h, full[:, 7:11])
        prefix = tiny.hidden_states_cached(ids[:, 7:], cache, (7, T), output_range=(7, 11))
        dual = tiny.hidden_states_cached(ids[:, 7:11], cache, (7, 11))
        torch.testing.assert_close(prefix, full[:, 7:11], rtol=0, atol=1e-10)
        torch.testing.assert_close(dual, full[:, 7:11], rtol=0, atol=1e-10)
        # a stale cache (built on another canvas) is an approximation: the slice's values differ
        other = ids.clone()
        other[:, 11:] = tiny.config.mask_token_id
        _, stale = tiny.hidden_states_kv(other, mask)
        assert not torch.allclose(tiny.hidden_states_cached(ids[:, 7:11], stale, (7, 11)), full[:, 7:11])
        with pytest.raises(ValueError, match="slice_range"):
            tiny.hidden_states_cached(ids[:, 7:11], cache, (7, T + 1))


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_cache_none_is_the_exact_sampler(tiny, temperature) -> None:
    ids, mask = model_prompts(tiny, [7, 3, 9])
    kw = _kw(tiny, temperature=temperature)
    ref = generate_reference(tiny, ids, mask, **kw, generator=torch.Generator().manual_seed(3))
    exact = generate(tiny, ids, mask, **kw, cache="none", generator=torch.Generator().manual_seed(3))
    # the engine's own cache-none loop (early stop on, with an id the model never writes) draws the same stream
    engine = generate(tiny, ids, mask, **kw, cache="none", early_stop=True, eos_id=tiny.config.mask_token_id,
                      generator=torch.Generator().manual_seed(3))
    assert torch.equal(exact, ref)
    assert torch.equal(engine, ref)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_refresh_every_step_gives_the_logits_and_tokens_of_none(tiny, cache, monkeypatch) -> None:
    ids, mask = model_prompts(tiny, [8, 5, 2], seed=1)
    kw = _kw(tiny)
    seen = _record_logits(tiny, monkeypatch)
    none = generate(tiny, ids, mask, **kw)
    none_logits = list(seen)
    seen.clear()
    cached = generate(tiny, ids, mask, **kw, cache=cache, refresh_every_step=True)
    assert len(seen) == len(none_logits) == 6
    for a, b in zip(seen, none_logits):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    assert torch.equal(cached, none)
    # without the refresh the cache is stale after step 0 of each block: different logits
    seen.clear()
    generate(tiny, ids, mask, **kw, cache=cache)
    assert any(not torch.allclose(a, b) for a, b in zip(seen, none_logits))


@pytest.mark.parametrize(
    ("cache", "unmasking"), [("none", "schedule"), ("prefix", "schedule"), ("dual", "schedule"), ("dual", "threshold")]
)
def test_left_padded_rows_decode_as_alone(tiny, cache, unmasking) -> None:
    ids, mask = model_prompts(tiny, [9, 4, 6], seed=2)
    kw = _kw(tiny, cache=cache, unmasking=unmasking, threshold=0.2)
    batch = generate(tiny, ids, mask, **kw)
    for r in range(ids.shape[0]):
        n = int(mask[r].sum())
        alone = generate(tiny, ids[r : r + 1, -n:], None, **kw)
        assert torch.equal(batch[r, -(n + 12) :], alone[0])
        assert torch.equal(batch[r, : ids.shape[1]], ids[r])


def test_threshold_above_every_confidence_is_one_token_per_step(tiny) -> None:
    ids, mask = model_prompts(tiny, [6, 4], seed=4)
    kw = _kw(tiny, steps=12)  # S_b = K = 4: the schedule reveals exactly one token per step
    stats: dict = {}
    thr = generate(tiny, ids, mask, **kw, cache="dual", unmasking="threshold", threshold=1.5, stats=stats)
    sched = generate(tiny, ids, mask, **kw, cache="dual")
    assert torch.equal(thr, sched)  # at least one (the most confident) per step, and no more
    assert stats["steps"] == 12


def test_threshold_commits_at_least_one_per_step_and_finishes_every_block(tiny, monkeypatch) -> None:
    ids, mask = model_prompts(tiny, [6, 8, 3], seed=5)
    kw = _kw(tiny, steps=6)  # S_b = 2 < K = 4: the last step of a block commits what is left
    seen = _record_logits(tiny, monkeypatch)
    out = generate(tiny, ids, mask, **kw, cache="prefix", unmasking="threshold", threshold=0.99)
    assert not bool((out == tiny.config.mask_token_id).any())
    sizes = [t.shape[0] for t in seen]  # masked positions at each step: 12 at each block start, then fewer
    assert sizes == [12, sizes[1], 12, sizes[3], 12, sizes[5]] and all(s <= 12 - 3 for s in sizes[1::2])
    # threshold 0: every masked token exceeds it, each block is finished in one step
    stats: dict = {}
    one = generate(tiny, ids, mask, **kw, cache="none", unmasking="threshold", threshold=0.0, stats=stats)
    assert stats["steps"] == 3 and not bool((one == tiny.config.mask_token_id).any())


@pytest.mark.parametrize("cache", ["none", "dual"])
def test_early_stop_never_changes_a_row_that_had_not_finished(tiny, cache) -> None:
    ids, mask = model_prompts(tiny, [5, 7, 3, 6], seed=6)
    kw = _kw(tiny, gen_length=16, steps=8, cache=cache)
    full = generate(tiny, ids, mask, **kw)
    P, K = ids.shape[1], 4
    comp = full[:, P:]
    # "EOS" = a token the model writes often, so that some rows finish early and others do not
    eos = int(comp[:, :8].flatten().mode().values)
    plain: dict = {}
    stopped: dict = {}
    generate(tiny, ids, mask, **kw, stats=plain)
    out = generate(tiny, ids, mask, **kw, early_stop=True, eos_id=eos, stats=stopped)
    finished = 0
    for r in range(ids.shape[0]):
        hits = (comp[r] == eos).nonzero()
        if not len(hits) or int(hits[0]) >= 12:  # no EOS before the last block: never stopped
            assert torch.equal(out[r], full[r])
            continue
        block_end = (int(hits[0]) // K + 1) * K
        assert torch.equal(out[r, : P + block_end], full[r, : P + block_end])
        assert bool((out[r, P + block_end :] == eos).all())
        finished += 1
    assert finished >= 1
    assert stopped["token_forwards"] < plain["token_forwards"]


def test_token_forward_counts_follow_the_block_arithmetic(tiny) -> None:
    B, P, L, K, S = 2, 5, 12, 4, 9  # 3 blocks of 3 steps
    ids, _ = model_prompts(tiny, [P] * B, seed=7)
    T, NB, S_b = P + L, L // K, S // (L // K)
    counts = {}
    for cache in ("none", "prefix", "dual"):
        stats: dict = {}
        generate(tiny, ids, None, **_kw(tiny, steps=S), cache=cache, stats=stats)
        counts[cache] = stats["token_forwards"]
        assert stats["cache"] == cache and stats["steps"] == NB * S_b
    assert counts["none"] == NB * S_b * B * T
    assert counts["prefix"] == sum(B * (T + (S_b - 1) * (T - (P + b * K))) for b in range(NB))
    assert counts["dual"] == NB * B * (T + (S_b - 1) * K)


def test_model_without_the_capability_falls_back_to_none_with_a_warning() -> None:
    model = DoubleLM()
    assert not probe(model).kv_cache
    ids, mask = left_padded([4, 2], seed=1)
    kw = {"gen_length": 8, "block_length": 4, "steps": 4, "mask_id": model.config.mask_token_id}
    stats: dict = {}
    with pytest.warns(UserWarning, match="no KV-cache forward; decoding with cache none"):
        out = generate(model, ids, mask, **kw, cache="dual", stats=stats)
    assert stats["cache"] == "none"
    assert torch.equal(out, generate(model, ids, mask, **kw))


def test_bad_engine_arguments_and_settings_name_the_field(tiny) -> None:
    ids, mask = model_prompts(tiny, [3])
    with pytest.raises(ValueError, match="cache must be one of"):
        generate(tiny, ids, mask, **_kw(tiny), cache="full")
    with pytest.raises(ValueError, match="cfg_scale"):
        generate(tiny, ids, mask, **_kw(tiny), cache="dual", cfg_scale=1.0)
    with pytest.raises(ValueError, match="remasking low_confidence"):
        generate(tiny, ids, mask, **_kw(tiny), unmasking="threshold", remasking="random")
    with pytest.raises(ValueError, match=r"train\.rollout\.unmasking"):
        RolloutConfig(unmasking="fast")
    with pytest.raises(ValueError, match=r"evaluate\.threshold"):
        EvalConfig(threshold=1.5)
    with pytest.raises(ValueError, match=r"evaluate\.cache.*redecode_earlier_masks"):
        EvalConfig(mode="faithful", cache="prefix")
    assert EvalConfig(mode="faithful", cache="prefix", redecode_earlier_masks=False).cache == "prefix"
    with pytest.raises(ValueError, match="compile needs cache prefix or dual"):
        generate(tiny, ids, mask, **_kw(tiny), compile=True)
    with pytest.raises(ValueError, match=r"train\.rollout\.compile .* needs train\.rollout\.cache prefix or dual"):
        RolloutConfig(compile=True)
    with pytest.raises(ValueError, match=r"evaluate\.compile must be true or false"):
        EvalConfig(cache="dual", compile="yes")


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_dense_head_gives_the_tokens_of_the_gathered_head(tiny, temperature, monkeypatch) -> None:
    """The sync-free head (every block position, confidences masked; CUDA's path) decodes the same tokens."""
    import spg_lib.decoding.cached as engine

    ids, mask = model_prompts(tiny, [9, 4, 6], seed=2)
    settings = [("prefix", "schedule"), ("dual", "schedule"), ("dual", "threshold")]
    gathered = [generate(tiny, ids, mask, **_kw(tiny, temperature=temperature), cache=c, unmasking=u,
                         threshold=0.2, generator=torch.Generator().manual_seed(5)) for c, u in settings]
    monkeypatch.setattr(engine, "DENSE_HEAD_DEVICES", ("cpu",))
    for (c, u), want in zip(settings, gathered, strict=True):
        got = generate(tiny, ids, mask, **_kw(tiny, temperature=temperature), cache=c, unmasking=u, threshold=0.2,
                       generator=torch.Generator().manual_seed(5))
        assert torch.equal(got, want), (c, u)


def test_compiled_cache_forwards_give_the_eager_tokens(tiny) -> None:
    """compile=True runs the same KV-cache forwards through torch.compile: same tokens (float64, τ = 0), and one
    compilation serves both cache modes and every batch / canvas size."""
    from spg_lib.training.run import wrap_lora

    for cache, lengths in (("dual", [8, 5, 2]), ("prefix", [8, 5, 2]), ("dual", [4, 11])):
        ids, mask = model_prompts(tiny, lengths, seed=1)
        eager = generate(tiny, ids, mask, **_kw(tiny), cache=cache)
        compiled = generate(tiny, ids, mask, **_kw(tiny), cache=cache, compile=True)
        assert torch.equal(compiled, eager), cache
    # through the PEFT wrapper the trainer's rollouts use (its forwards reach the wrapped model's)
    lora = wrap_lora(init_tiny_model(seed=0).double(), LoRASettings(enabled=True, r=4, alpha=8, dropout=0.0))
    ids, mask = model_prompts(tiny, [6, 3], seed=4)
    assert torch.equal(generate(lora, ids, mask, **_kw(tiny), cache="dual", compile=True),
                       generate(lora, ids, mask, **_kw(tiny), cache="dual"))


class _EvalOnes:
    """The evaluation side of a toy task (prompt, ground truth, score) for evaluate_model."""

    name = "ones"

    def prompt(self, example, style, evaluation=False):
        return f"q{example['i']}"

    def question(self, example):
        return f"q{example['i']}"

    def ground_truth(self, example):
        return "1"

    def score(self, text, truth, mode="fixed"):
        from types import SimpleNamespace

        hit = float(truth in text)
        return SimpleNamespace(correct=hit, total=1.0, extracted=None, is_correct=bool(hit))


def test_trainer_rollouts_and_evaluation_use_the_configured_engine(tmp_path, monkeypatch) -> None:
    """train.rollout.* and evaluate.* reach the sampler (through a LoRA-wrapped model for the trainer)."""
    import spg_lib.decoding.sampler as sampler_module
    from spg_lib.models import build_tiny_tokenizer
    from spg_lib.tasks.evaluate import evaluate_model
    from spg_lib.training.run import wrap_lora
    from spg_lib.training.trainer import Trainer
    from tests.training.helpers import EXAMPLES, OnesTask, small_config  # the trainer tests' toy task

    calls: list[dict] = []
    original = sampler_module.generate_cached

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(sampler_module, "generate_cached", recording)
    rollout = RolloutConfig(steps=8, batch_size=4, temperature=1.0, cache="dual", unmasking="threshold",
                            threshold=0.5, early_stop=True)
    cfg = small_config("spg-mix", out_dir=str(tmp_path), max_steps=1,
                       lora=LoRASettings(enabled=True, r=4, alpha=8, dropout=0.0), rollout=rollout)
    model = wrap_lora(init_tiny_model(seed=0), cfg.lora)
    assert probe(model).kv_cache  # the PEFT wrapper forwards the capability
    tokenizer = build_tiny_tokenizer()
    trainer = Trainer(cfg, model, tokenizer, EXAMPLES, OnesTask())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = trainer.train(progress=False)
    assert not [w for w in caught if "KV-cache" in str(w.message)]
    assert len(history) == 1 and calls
    assert all(c["cache"] == "dual" and c["unmasking"] == "threshold" and c["threshold"] == 0.5
               and c["early_stop"] and c["eos_id"] == tokenizer.eos_token_id and c["compile"] is False for c in calls)
    calls.clear()
    ecfg = EvalConfig(gen_length=8, block_length=4, steps=4, cache="prefix", batch_size=2, prompt_style="compact",
                      progress=False)
    records, _ = evaluate_model(init_tiny_model(seed=0), tokenizer, _EvalOnes(), EXAMPLES[:2], ecfg)
    assert len(records) == 2 and calls and all(c["cache"] == "prefix" for c in calls)


def test_row_chunked_fill_gives_the_cache_and_tokens_of_one_pass(tiny, monkeypatch) -> None:
    """On CPU the block-boundary forward runs in row groups into one preallocated cache: the same cache (key
    mask, rotary tables, keys/values) as one pass, and the same tokens."""
    import spg_lib.decoding.sampler as sampler_module

    assert probe(tiny).kv_row_chunk
    ids, mask = model_prompts(tiny, [9, 4, 6, 9, 2], seed=3)
    with torch.no_grad():
        h1, one = tiny.hidden_states_kv(ids, mask, output_range=(4, 8))
        h2, rows = tiny.hidden_states_kv(ids, mask, output_range=(4, 8), row_chunk=2)
        torch.testing.assert_close(h2, h1, rtol=0, atol=1e-12)
        assert torch.equal(rows.key_mask, one.key_mask) and rows.batch_size == 5
        torch.testing.assert_close(rows.sin, one.sin, rtol=0, atol=0)
        for a, b in zip(rows.keys + rows.values, one.keys + one.values, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
        # rows with no padding: no key mask, as one pass
        _, unpadded = tiny.hidden_states_kv(ids[:, -2:], None, row_chunk=2)
        assert unpadded.key_mask is None
    settings = [("prefix", "schedule"), ("dual", "schedule"), ("dual", "threshold")]
    whole = [generate(tiny, ids, mask, **_kw(tiny), cache=c, unmasking=u, threshold=0.2) for c, u in settings]
    monkeypatch.setattr(sampler_module, "CPU_TOKENS_PER_THREAD", 8)  # 1 row per pass at these lengths
    for (c, u), want in zip(settings, whole, strict=True):
        assert torch.equal(generate(tiny, ids, mask, **_kw(tiny), cache=c, unmasking=u, threshold=0.2), want)

"""Bounds against exact enumeration on an enumerable toy (docs/algorithms.md#eubo, paper App. E.3).

The toy "model" is a lookup table: for a noisy sequence z ∈ {0..V−1, [M]}ⁿ it gives logits for every position,
so every conditional π(x_i | z) is known exactly. Its sequence likelihood under the continuous-time linear
schedule (uniformly random unmasking order) is π(x) = E_σ Π_k π(x_σk | x_σ<k).

Key identity used to feed enumerations through the library estimators: under the ``random`` forward process
(n ~ U{1..L_c}, uniform n-subset) a pattern S has probability 1/(n·C(n,|S|)), so
E[1/t̂ · f(S)] = Σ_S B(|S|, n−|S|+1)·f(S) = ∫ w(t) E_{z_t}[f] dt with w(t) = 1/t — the continuous-time ELBO/EUBO
weights. Listing every pattern S with multiplicity ∝ P(S) as MC samples therefore makes the library's
ELBO·L_c and EUBO·L_c exactly the continuous bounds.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from spg_lib.algos.likelihood import elbo_estimate, eubo_estimate
from spg_lib.algos.masking import bound_mask, forward_process


class TableModel:
    def __init__(self, n: int, V: int, seed: int, scale: float = 2.0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.n, self.V, self.mask_id = n, V, V
        self.logits = torch.randn((V + 1) ** n, n, V, generator=g, dtype=torch.float64) * scale

    def logp(self, noisy: torch.Tensor, x: torch.Tensor, logits: torch.Tensor | None = None) -> torch.Tensor:
        """noisy [..., n], x [n] -> log π(x_i | noisy) [..., n] (float64)."""
        table = self.logits if logits is None else logits
        key = (noisy * (self.V + 1) ** torch.arange(self.n)).sum(-1)
        lp = torch.log_softmax(table[key], -1)  # [..., n, V]
        return lp.gather(-1, x.expand(*noisy.shape).unsqueeze(-1)).squeeze(-1)

    def cond(self, x: torch.Tensor, visible: set[int], i: int) -> float:
        z = torch.tensor([int(x[j]) if j in visible else self.mask_id for j in range(self.n)])
        return float(self.logp(z, x)[i].exp())

    def log_likelihood(self, x: torch.Tensor) -> float:
        total = 0.0
        perms = list(itertools.permutations(range(self.n)))
        for order in perms:
            prob, seen = 1.0, set()
            for i in order:
                prob *= self.cond(x, seen, i)
                seen.add(i)
            total += prob / len(perms)
        return math.log(total)


def _patterns_as_samples(n: int) -> torch.Tensor:
    """All non-empty masking patterns with multiplicity ∝ 1/(n·C(n,|S|)). -> BoolTensor [m, n]."""
    lcm = math.lcm(*[n * math.comb(n, s) for s in range(1, n + 1)])
    rows = []
    for s in range(1, n + 1):
        for S in itertools.combinations(range(n), s):
            rows += [[k in S for k in range(n)]] * (lcm // (n * math.comb(n, s)))
    return torch.tensor(rows)


def _library_bounds(model: TableModel, x: torch.Tensor, beta: float, logits=None) -> tuple[torch.Tensor, ...]:
    pats = _patterns_as_samples(model.n)  # [m, n]
    noisy = torch.where(pats, model.mask_id, x).unsqueeze(0)  # [1, m, n]
    logp = model.logp(noisy, x, logits)  # [1, m, n]
    cmask = torch.ones(1, model.n, dtype=torch.bool)
    masked = bound_mask(noisy, cmask, prompt_len=0, mask_id=model.mask_id)
    L_c = model.n
    elbo = elbo_estimate(logp, masked, cmask)[0] * L_c
    eubo = eubo_estimate(logp, masked, cmask, beta=beta)[0] * L_c
    return elbo, eubo


def _integrated_bounds(model: TableModel, x: torch.Tensor, beta: float) -> tuple[float, float]:
    """Continuous-time bounds by numerical integration over t of the exact pattern distribution q(S | t)."""
    n = model.n
    ts = (torch.arange(20000, dtype=torch.float64) + 0.5) / 20000  # midpoint rule on (0, 1)
    elbo, inner = 0.0, [0.0] * n
    for s in range(1, n + 1):
        weight = float(((1 / ts) * ts**s * (1 - ts) ** (n - s)).mean())  # ∫ w(t) t^s (1−t)^(n−s) dt
        for S in itertools.combinations(range(n), s):
            visible = set(range(n)) - set(S)
            for i in S:
                p = model.cond(x, visible, i)
                elbo += weight * math.log(p)
                inner[i] += weight * p**beta
    return elbo, sum(math.log(v) for v in inner) / beta


@pytest.mark.parametrize("seed", range(4))
def test_library_bounds_equal_continuous_time_bounds(seed: int) -> None:
    model = TableModel(n=3, V=2, seed=seed)
    x = torch.tensor([seed % 2, 1, 0])
    elbo, eubo = _library_bounds(model, x, beta=1.5)
    e_int, u_int = _integrated_bounds(model, x, beta=1.5)
    assert abs(float(elbo) - e_int) < 1e-6
    assert abs(float(eubo) - u_int) < 1e-6


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("beta", [2.0, 3.0])
def test_paper_toy_sandwich_n2_v2(seed: int, beta: float) -> None:
    """App. E.3 toy (n = 2, V = 2): L_ELBO ≤ log π(x) ≤ L̃_EUBO (β ≥ n, so C(T) = 0), for every x."""
    model = TableModel(n=2, V=2, seed=100 + seed, scale=3.0)
    for x in itertools.product(range(2), repeat=2):
        xt = torch.tensor(x)
        elbo, eubo = _library_bounds(model, xt, beta)
        ll = model.log_likelihood(xt)
        # closed forms: ELBO = ½[log π(x1|x2) + log π(x2|x1)] + ½[log π(x1|∅) + log π(x2|∅)]
        c = model.cond
        closed_elbo = 0.5 * (math.log(c(xt, {1}, 0)) + math.log(c(xt, {0}, 1))) + 0.5 * (
            math.log(c(xt, set(), 0)) + math.log(c(xt, set(), 1)))
        closed_eubo = sum(math.log(0.5 * c(xt, {1 - i}, i) ** beta + 0.5 * c(xt, set(), i) ** beta)
                          for i in range(2)) / beta
        assert abs(float(elbo) - closed_elbo) < 1e-6
        assert abs(float(eubo) - closed_eubo) < 1e-6
        assert float(elbo) <= ll + 1e-9 <= float(eubo) + 2e-9


def test_elbo_is_tight_for_consistent_conditionals() -> None:
    """Sanity: conditionals of a true joint → ELBO = log p(x) exactly (so the sandwich is not vacuous)."""
    g = torch.Generator().manual_seed(0)
    joint = torch.rand(2, 2, generator=g, dtype=torch.float64)
    joint /= joint.sum()
    model = TableModel(n=2, V=2, seed=0)
    for key in range(9):
        z = [key % 3, key // 3]
        for i in range(2):
            other = 1 - i
            # p(x_i | z_other): marginal when the other token is masked (id 2), else the joint's slice
            marg = joint.sum(dim=other) if z[other] == 2 else joint.select(other, z[other])
            model.logits[key, i] = torch.log(marg / marg.sum())
    for x in itertools.product(range(2), repeat=2):
        elbo, _ = _library_bounds(model, torch.tensor(x), 2.0)
        assert abs(float(elbo) - math.log(float(joint[x]))) < 1e-9


@pytest.mark.parametrize("beta", [1.5, 2.0])
def test_gradient_direction_eubo_favours_larger_probability(beta: float) -> None:
    """Token with per-state probabilities a = π(x|∅) > b = π(x|other visible): ∂EUBO/∂a = a^(β−1)/(a^β+b^β) >
    ∂EUBO/∂b, while ∂ELBO/∂a = 1/(2a) < ∂ELBO/∂b = 1/(2b)."""
    a = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    # n = 2 pattern samples {0}, {1}, {0,1}, {0,1}; token 0 sees b when only it is masked, a when both are
    other = torch.tensor(0.5, dtype=torch.float64)
    logp = torch.stack([torch.stack([b.log(), other.log()]), torch.stack([other.log(), other.log()]),
                        torch.stack([a.log(), other.log()]), torch.stack([a.log(), other.log()])]).unsqueeze(0)
    masked = _patterns_as_samples(2).unsqueeze(0)
    cmask = torch.ones(1, 2, dtype=torch.bool)
    eubo = eubo_estimate(logp, masked, cmask, beta=beta)[0] * 2
    ga, gb = torch.autograd.grad(eubo, (a, b), retain_graph=True)
    assert abs(float(ga) - 0.8 ** (beta - 1) / (0.8**beta + 0.2**beta)) < 1e-9
    assert abs(float(gb) - 0.2 ** (beta - 1) / (0.8**beta + 0.2**beta)) < 1e-9
    assert ga > gb
    elbo = elbo_estimate(logp, masked, cmask)[0] * 2
    ga, gb = torch.autograd.grad(elbo, (a, b))
    assert abs(float(ga) - 1 / (2 * 0.8)) < 1e-9 and abs(float(gb) - 1 / (2 * 0.2)) < 1e-9
    assert ga < gb


# --------------------------------------------------------------------------------------------------
# MC estimators converge to their enumerated expectations
# --------------------------------------------------------------------------------------------------


def _enumerate_random(n: int) -> list[tuple[float, tuple[int, ...]]]:
    return [(1 / (n * math.comb(n, s)), S) for s in range(1, n + 1) for S in itertools.combinations(range(n), s)]


def _enumerate_block_random(L: int, K: int, p: float) -> list[tuple[float, tuple[int, ...]]]:
    """Exact single-sample distribution of block_random for L_c = L, no prompt (independent implementation)."""
    NB = L // K
    out = []
    for blk in range(NB):
        start = blk * K
        for n in range(1, K + 1):
            for S in itertools.combinations(range(start, start + K), n):
                for E in itertools.product([False, True], repeat=start):
                    pe = math.prod(p if e else 1 - p for e in E)
                    pattern = tuple(sorted({k for k, e in enumerate(E) if e} | set(S) | set(range(start + K, L))))
                    out.append((pe / (NB * K * math.comb(K, n)), pattern))
    return out


def _exact_elbo(model: TableModel, x: torch.Tensor, dist) -> float:
    total = 0.0
    for prob, S in dist:
        z = torch.tensor([model.mask_id if k in S else int(x[k]) for k in range(model.n)])
        lp = model.logp(z, x)
        total += prob * float(lp[list(S)].sum()) / len(S)
    return total


@pytest.mark.parametrize("name", ["random", "block_random"])
def test_mc_elbo_converges_to_enumerated_expectation(name: str) -> None:
    n, V, K, p = 4, 3, 2, 0.3
    model = TableModel(n=n, V=V, seed=7)
    x = torch.tensor([2, 0, 1, 1])
    dist = _enumerate_random(n) if name == "random" else _enumerate_block_random(n, K, p)
    assert abs(sum(pr for pr, _ in dist) - 1) < 1e-12
    exact = _exact_elbo(model, x, dist)
    B = 4000
    ids = x.unsqueeze(0).expand(B, -1)
    cmask = torch.ones(B, n, dtype=torch.bool)
    nb = forward_process(name, ids, cmask, prompt_len=0, mask_id=model.mask_id, num_mc=2, block_length=K,
                         p_mask_prompt=p, generator=torch.Generator().manual_seed(11))
    logp = model.logp(nb.noisy, x)
    per_row = elbo_estimate(logp, bound_mask(nb.noisy, cmask, prompt_len=0, mask_id=model.mask_id), cmask)
    se = float(per_row.std()) / math.sqrt(B)
    assert abs(float(per_row.mean()) - exact) < 4 * se + 1e-9


def test_mc_eubo_converges_as_m_grows() -> None:
    """With m → ∞ the plug-in EUBO → (1/β)(1/n) Σ_i log E[1{i∈S} π^β / t̂] (the continuous EUBO / n)."""
    n, V, beta = 3, 3, 1.5
    model = TableModel(n=n, V=V, seed=3)
    x = torch.tensor([1, 2, 0])
    inner = [0.0] * n
    for prob, S in _enumerate_random(n):
        z = torch.tensor([model.mask_id if k in S else int(x[k]) for k in range(n)])
        lp = model.logp(z, x)
        for i in S:
            inner[i] += prob * math.exp(beta * float(lp[i])) * n / len(S)
    exact = sum(math.log(v) for v in inner) / beta / n
    cmask = torch.ones(1, n, dtype=torch.bool)
    errs = []
    for m in (8, 6000):
        nb = forward_process("random", x.unsqueeze(0), cmask, prompt_len=0, mask_id=model.mask_id, num_mc=m,
                             generator=torch.Generator().manual_seed(m))
        masked = bound_mask(nb.noisy, cmask, prompt_len=0, mask_id=model.mask_id)
        errs.append(abs(float(eubo_estimate(model.logp(nb.noisy, x), masked, cmask, beta=beta)[0]) - exact))
    assert errs[1] < 0.02

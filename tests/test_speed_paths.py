"""The fast paths compute what the plain ones do: checkpointed solver, batched exact W2, chunked
statistics, memory-mapped (backed) data, bfloat16 simulation, field constants."""

import dataclasses

import numpy as np
import pytest
import torch

from perturbode_core.data.gene_stats import column_mean_std
from perturbode_core.model import ModelConfig, PerturbODE
from perturbode_core.train.ot_loss import exact_w2, exact_w2_batched, population_loss


def _model(**kw):
    p = 10
    m = PerturbODE([f"g{i}" for i in range(p)], ModelConfig(n_modules=6, **kw), control_level=np.full(p, 0.5), seed=2)
    batch = m.encode(["control", "g1", "g2:overexpression+g3:clamp=1", "g4:activity=0.3", "g5:shift=0.7"])
    return m, batch


def _grads(m, batch, z0):
    m.zero_grad()
    out = m.integrate(z0, batch, [0.0, 2.0, 4.0])
    out.square().mean().backward()
    return out.detach(), {k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None}


def test_checkpointed_steps_give_the_same_values_and_gradients():
    z0 = torch.randn(7, 10, generator=torch.Generator().manual_seed(0))
    m, batch = _model()
    out_a, g_a = _grads(m, batch, z0)
    m.config = dataclasses.replace(m.config, checkpoint_steps=True)
    out_b, g_b = _grads(m, batch, z0)
    torch.testing.assert_close(out_a, out_b)
    for k in g_a:
        torch.testing.assert_close(g_a[k], g_b[k], msg=k)


def test_fast_vector_field_equals_the_formula():
    m, batch = _model()
    z = torch.randn(5, 3, 10, generator=torch.Generator().manual_seed(1))
    act = batch.activity
    zin = z * act + (act - 1.0) * (m.mean / m.scale)
    plain = (torch.sigmoid(zin @ m.B.T + m.b) * m.alpha) @ m.A.T + m.basal() - m.gamma * z
    plain = plain + batch.shift + batch.overexpression * m.delta
    plain = torch.where(batch.clamp_mask, m.gamma * (batch.clamp_level - z), plain)
    torch.testing.assert_close(m.vector_field(z, batch), plain)


@pytest.mark.parametrize("solver", ["rk4", "midpoint"])
def test_fixed_step_solvers_agree_with_dopri5(solver):
    x0 = np.random.default_rng(0).normal(0.5, 0.5, (6, 10)).astype(np.float32)
    m, _ = _model(solver=solver, step_size=0.05)
    ref, _ = _model(solver="dopri5", rtol=1e-7, atol=1e-8)
    perts = ["control", "g1", "g2:overexpression+g3:clamp=1"]
    np.testing.assert_allclose(m.simulate(x0, perts, [0, 1.3, 3.0]), ref.simulate(x0, perts, [0, 1.3, 3.0]),
                               atol=2e-3 if solver == "midpoint" else 1e-5)


def test_bfloat16_simulation_is_close():
    x0 = np.random.default_rng(0).normal(0.5, 0.5, (6, 10)).astype(np.float32)
    m, _ = _model()
    a = m.simulate(x0, ["g1", "g5:shift=0.7"])
    b = m.simulate(x0, ["g1", "g5:shift=0.7"], precision="bfloat16")
    change = np.abs(a[-1] - a[0]).max()
    assert np.abs(a - b).max() < 0.03 * change


def test_batched_exact_w2_equals_pot_per_group_with_uneven_groups():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 12, 5, generator=g, requires_grad=True)
    obs = [torch.randn(k, 5, generator=g) for k in (12, 7, 3, 12)]
    loop = torch.stack([exact_w2(x[i], obs[i]) for i in range(4)]) / 5
    (gl,) = torch.autograd.grad(loop.sum(), x)
    fast = population_loss(x, obs)
    (gf,) = torch.autograd.grad(fast.sum(), x)
    torch.testing.assert_close(fast, loop, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gf, gl, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(exact_w2_batched(x, x.detach()), torch.zeros(4), atol=1e-5, rtol=0)


def test_chunked_mean_std_equals_numpy():
    X = np.random.default_rng(0).normal(3, 2, (1000, 7)).astype(np.float32)
    rows = np.flatnonzero(np.arange(1000) % 3 == 0)
    for r in (None, rows):
        mean, sd = column_mean_std(X, r, chunk=64)
        sub = X if r is None else X[r]
        np.testing.assert_allclose(mean, sub.mean(0), rtol=1e-5)
        np.testing.assert_allclose(sd, sub.std(0), rtol=1e-4)


def test_chunked_mean_std_leaves_float64_input_untouched():
    """A float64 matrix read without row selection gives views, not copies: the input must not be
    centred in place (it once was, corrupting the data that training then read)."""
    X = np.random.default_rng(1).normal(3, 2, (300, 5))
    before = X.copy()
    mean, sd = column_mean_std(X, chunk=64)
    np.testing.assert_array_equal(X, before)
    np.testing.assert_allclose(mean, before.mean(0), rtol=1e-6)
    np.testing.assert_allclose(sd, before.std(0), rtol=1e-5)


def test_backed_h5ad_is_memory_mapped_and_trains_identically(teacher_h5ad):
    from perturbode_core.data.dataset import load
    from perturbode_core.train import TrainConfig, fit

    backed = load(teacher_h5ad, backed=True)
    memory = load(teacher_h5ad)
    assert isinstance(backed.X, np.memmap)
    cfg = TrainConfig(epochs=1, cells_per_condition=16, batch_conditions=6)
    a, b = fit(backed, train_config=cfg), fit(memory, train_config=cfg)
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k

"""The vector field, interventions and the solver against exact answers."""

import math

import numpy as np
import pytest
import torch

from perturbode_core.errors import PerturbODEError
from perturbode_core.model import ModelConfig, PerturbODE
from perturbode_core.datasets.teacher import teacher_edges


def _decay_model(solver="rk4", gamma=0.7):
    # the plain ODE (no paired-control correction, fixed shift strength): exact solutions apply
    p = 5
    m = PerturbODE([f"g{i}" for i in range(p)], ModelConfig(n_modules=3, solver=solver, step_size=0.1,
                                                                   paired_control=False, learn_shift=False),
                   mean=np.zeros(p), scale=np.ones(p), control_level=np.full(p, 2.0))
    with torch.no_grad():
        m.A.zero_()  # no regulation: pure decay towards the anchored control level
        m.log_gamma.fill_(math.log(gamma))
    return m


@pytest.mark.parametrize("solver", ["rk4", "dopri5", "euler"])
def test_pure_decay_matches_exact_solution(solver):
    gamma = 0.7
    m = _decay_model(solver, gamma)
    x0 = np.array([[0.0, 1.0, 2.0, 3.0, 5.0]], np.float32)
    t = np.linspace(0, 4, 9)
    out = m.simulate(x0, ["control"], t)[:, 0, 0]  # (T, p)
    exact = 2.0 + (x0[0] - 2.0) * np.exp(-gamma * t)[:, None]
    tol = 6e-2 if solver == "euler" else 1e-4  # Euler: global error O(h gamma)
    np.testing.assert_allclose(out, exact, atol=tol)


def test_knockout_relaxes_to_zero_and_clamp_to_level():
    m = _decay_model("dopri5", 1.0)
    x0 = np.full((1, 5), 2.0, np.float32)
    t = np.array([0.0, 1.0, 20.0])
    out = m.simulate(x0, ["g1:knockout+g2:clamp=4+g3:knockdown=0.25"], t)[:, 0, 0]
    assert out[-1, 1] == pytest.approx(0.0, abs=1e-4)
    assert out[1, 1] == pytest.approx(2.0 * math.exp(-1.0), abs=1e-4)  # gamma (0 - x) relaxation
    assert out[-1, 2] == pytest.approx(4.0, abs=1e-4)
    assert out[-1, 3] == pytest.approx(0.75 * 2.0, abs=1e-4)  # 25 % removed from the control level
    assert out[-1, 0] == pytest.approx(2.0, abs=1e-4)  # untouched gene stays


def test_shift_and_overexpression_raise_steady_state():
    m = _decay_model("dopri5", 1.0)
    x0 = np.full((1, 5), 2.0, np.float32)
    out = m.simulate(x0, ["g0:shift=0.5+g1:overexpression=2"], [0.0, 30.0])[-1, 0, 0]
    assert out[0] == pytest.approx(2.5, abs=1e-3)  # steady state moves by shift / gamma
    assert out[1] == pytest.approx(2.0 + 2 * m.config.shift_delta, abs=1e-3)


def test_control_state_is_a_fixed_point(teacher):
    level = teacher.unstandardize(teacher.anchor).detach().numpy()[None]
    out = teacher.simulate(level, ["control"], [0.0, 10.0])[-1, 0, 0]
    np.testing.assert_allclose(out, level[0], atol=1e-5)


def test_knockout_of_activator_lowers_targets_and_of_repressor_raises(teacher):
    edges = teacher_edges(teacher)
    level = teacher.unstandardize(teacher.anchor).detach().numpy()[None]
    regulators = sorted(set(edges.source))
    sims = teacher.simulate(level, regulators, [0.0, 10.0])[-1, :, 0]  # (C, p)
    idx = {g: i for i, g in enumerate(teacher.gene_names)}
    # targets with a single regulator: no indirect path can mask the direct effect
    in_degree = edges.target.value_counts()
    checked = 0
    for ci, reg in enumerate(regulators):
        for row in edges[(edges.source == reg) & (edges.target.map(in_degree) == 1)].itertuples():
            change = sims[ci, idx[row.target]] - level[0, idx[row.target]]
            # knocking out a regulator that is above 0 removes its effect: the target moves
            # opposite to the edge's sign (activator KO lowers, repressor KO raises)
            assert np.sign(change) == -row.sign, (reg, row.target, change, row.sign)
            checked += 1
    assert checked >= 4


def test_batched_solve_equals_one_solve_per_condition(teacher):
    rng = np.random.default_rng(0)
    level = teacher.unstandardize(teacher.anchor).detach().numpy()
    x0 = level + 0.3 * rng.standard_normal((7, teacher.n_genes)).astype(np.float32)
    perts = ["G001", "G002:overexpression", "G003+G004", "control"]
    together = teacher.simulate(x0, perts, [0.0, 5.0])[-1]
    for ci, pert in enumerate(perts):
        alone = teacher.simulate(x0, [pert], [0.0, 5.0])[-1, 0]
        np.testing.assert_allclose(together[ci], alone, atol=1e-5)


def test_activity_intervention_silences_regulator_but_frees_its_level(teacher):
    edges = teacher_edges(teacher)
    reg = edges.source.iloc[0]
    level = teacher.unstandardize(teacher.anchor).detach().numpy()[None]
    ko = teacher.simulate(level, [reg], [0.0, 20.0])[-1, 0, 0]
    act = teacher.simulate(level, [f"{reg}:activity=0"], [0.0, 20.0])[-1, 0, 0]
    j = teacher.gene_names.index(reg)
    targets = [teacher.gene_names.index(t) for t in edges[edges.source == reg].target]
    np.testing.assert_allclose(act[targets], ko[targets], atol=1e-3)  # same effect on targets
    assert abs(act[j] - level[0, j]) < abs(ko[j] - level[0, j])  # but its own level is not forced to 0


@pytest.mark.parametrize("bad, message", [
    ({"solver": "rk5"}, "Unknown solver"),
    ({"activation": "swish"}, "Unknown activation"),
    ({"horizon": -1}, "horizon must be a positive"),
    ({"n_modules": 0}, "n_modules must be a positive integer"),
    ({"anchor": "mean"}, "Unknown anchor"),
])
def test_bad_options_are_refused_with_the_valid_choices(bad, message):
    with pytest.raises(PerturbODEError, match=message):
        ModelConfig(**bad)


def test_unknown_target_is_named(teacher):
    with pytest.raises(PerturbODEError, match="NOTAGENE"):
        teacher.simulate(np.zeros((1, teacher.n_genes), np.float32), ["G001+NOTAGENE"])


def test_sinkhorn_divergence_is_zero_for_identical_and_grows_with_shift():
    from perturbode_core.train.ot_loss import exact_w2, sinkhorn_divergence

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 64, 3, generator=gen)
    same = sinkhorn_divergence(x, x.clone())
    shifted = sinkhorn_divergence(x, x + 1.0)
    assert float(same) == pytest.approx(0.0, abs=1e-4)
    # for a pure translation, W2^2 = |shift|^2 = 3 and the debiased divergence is close to it
    assert float(exact_w2(x[0], x[0] + 1.0)) == pytest.approx(3.0, rel=1e-4)
    assert float(shifted) == pytest.approx(3.0, rel=0.1)


def test_intervention_levels_are_in_data_units_under_a_non_trivial_scale():
    """Knockout / clamp / knockdown levels and overexpression strengths are data units and shifts
    standardised units (x scale in data units), also when mean != 0 and scale != 1: a units slip
    in encode() shows here."""
    p = 5
    mean = np.array([1.0, 0.5, -1.0, 2.0, 0.3])
    scale = np.array([2.0, 0.5, 3.0, 1.5, 0.8])
    m = PerturbODE([f"g{i}" for i in range(p)], ModelConfig(n_modules=3, solver="dopri5"),
                   mean=mean, scale=scale, control_level=np.full(p, 2.0))
    with torch.no_grad():
        m.A.zero_()
        m.log_gamma.fill_(0.0)  # gamma = 1
    x0 = np.full((1, p), 2.0, np.float32)
    spec = "g0:shift=0.5+g1:knockout+g2:clamp=4+g3:knockdown=0.25+g4:overexpression=2"
    out = m.simulate(x0, [spec], [0.0, 30.0])[-1, 0, 0]
    expected = [2.0 + 0.5 * scale[0],  # shift / gamma standardised units
                0.0, 4.0, 0.75 * 2.0,
                2.0 + 2 * m.config.shift_delta]  # overexpression strength: data units (shift_units="level")
    np.testing.assert_allclose(out, expected, atol=1e-3)
    old = PerturbODE([f"g{i}" for i in range(p)], ModelConfig(n_modules=3, solver="dopri5", shift_units="standardised"),
                     mean=mean, scale=scale, control_level=np.full(p, 2.0))
    old.load_state_dict(m.state_dict())
    assert old.simulate(x0, ["g4:overexpression=2"], [0.0, 30.0])[-1, 0, 0, 4] == pytest.approx(
        2.0 + 2 * old.config.shift_delta * scale[4], abs=1e-3)


def test_an_overexpression_raises_the_level_by_its_strength_whatever_the_decay():
    """``level`` (default): the steady state of an isolated gene rises by value x strength in data
    units for any decay; ``data`` adds it as a rate (rise = value x strength / gamma)."""
    p = 3
    scale = np.array([2.0, 0.5, 1.0])
    rise = {}
    for units in ("level", "data"):
        m = PerturbODE([f"g{i}" for i in range(p)], ModelConfig(n_modules=2, solver="dopri5", shift_units=units),
                       mean=np.zeros(p), scale=scale, control_level=np.full(p, 1.0))
        with torch.no_grad():
            m.A.zero_()
            m.log_gamma.copy_(torch.log(torch.tensor([0.25, 4.0, 1.0])))  # slow, fast, unit decay
        x0 = np.full((1, p), 1.0, np.float32)
        out = m.simulate(x0, ["g0:overexpression=2+g1:overexpression=2+g2:overexpression=2"], [0.0, 80.0])
        rise[units] = out[-1, 0, 0] - 1.0
    np.testing.assert_allclose(rise["level"], [2.0, 2.0, 2.0], atol=1e-3)
    np.testing.assert_allclose(rise["data"], [8.0, 0.5, 2.0], atol=1e-3)


def test_default_module_count_follows_the_perturbations():
    from perturbode_core.data.dataset import from_anndata
    from perturbode_core.model import resolve_n_modules
    from perturbode_core.datasets.teacher import teacher_dataset, teacher_model

    assert resolve_n_modules(11) == 11  # small networks: K = p
    assert resolve_n_modules(264, 41) == 45 and resolve_n_modules(400, 37) == 41
    assert resolve_n_modules(10000, 2000) == 512 and resolve_n_modules(100, 3) == 16
    teacher = teacher_model(80, seed=0)
    genes = teacher.gene_names
    data = from_anndata(teacher_dataset(teacher, perturbations=genes[:20], cells_per_condition=5))
    assert PerturbODE.from_data(data).n_modules == 22  # 1.1 x 20 perturbed genes
    # only the training conditions count
    assert PerturbODE.from_data(data, conditions=["control"] + genes[:15]).n_modules == 16
    assert PerturbODE.from_data(data, ModelConfig(n_modules=7)).n_modules == 7  # an explicit K wins

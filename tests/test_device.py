"""Where training runs and how big a step is: device auto, matmul precision, the GPU step sizing.

Nothing here needs a GPU: the CUDA paths are pure functions of the sizes (free memory, genes,
modules) or are checked to be refused cleanly where no GPU is present.
"""

import dataclasses

import numpy as np
import pytest
import torch

from perturbode_core.errors import PerturbODEError
from perturbode_core.model import ModelConfig, PerturbODE
from perturbode_core.train import TrainConfig, fit
from perturbode_core.train import autobatch
from perturbode_core.train.autobatch import choose_batch, fill_device
from perturbode_core.train.device import matmul_precision, resolve_device, resolve_matmul_precision
from perturbode_core.train.memory import activation_bytes_per_cell

GiB = 2**30
QUICK = dict(epochs=1, cells_per_condition=8, batch_conditions=4)
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a GPU")


@no_cuda
def test_auto_falls_back_to_the_cpu_and_named_gpus_are_refused_clearly():
    assert TrainConfig().device == "auto"
    assert resolve_device("auto") in ("cpu", "mps")
    for name in ("cuda", "cuda:1"):
        with pytest.raises(PerturbODEError, match="sees no CUDA GPU") as err:
            resolve_device(name)
        assert "--device auto or cpu" in err.value.fix
    with pytest.raises(PerturbODEError, match="Unknown device"):
        TrainConfig(device="gpu")
    with pytest.raises(PerturbODEError, match="Unknown device"):
        TrainConfig(device="cuda:x")


@no_cuda
def test_fit_with_auto_trains_on_the_cpu_with_the_options_exactly_as_given(teacher_data):
    cfg = TrainConfig(**QUICK)
    result = fit(teacher_data, train_config=cfg)
    assert result.train_config == cfg  # no sizing, no learning-rate change on the CPU
    assert not any(e.startswith("auto_batch") for e in result.events)
    assert next(iter(result.model.parameters())).device.type == "cpu"
    with pytest.raises(PerturbODEError, match="sees no CUDA GPU"):
        fit(teacher_data, train_config=dataclasses.replace(cfg, device="cuda"))


def test_matmul_precision_is_tf32_on_cuda_by_default_and_untouched_on_the_cpu():
    assert resolve_matmul_precision("auto", "cuda") == "high"
    assert resolve_matmul_precision("auto", "cuda:1") == "high"
    assert resolve_matmul_precision("auto", "cpu") == "highest"
    assert resolve_matmul_precision("medium", "cpu") == "medium"
    with pytest.raises(PerturbODEError, match="matmul_precision"):
        TrainConfig(matmul_precision="fast")


def test_matmul_precision_is_applied_during_a_run_and_restored(teacher_data):
    before = torch.get_float32_matmul_precision()
    seen = []
    fit(teacher_data, train_config=TrainConfig(matmul_precision="medium", **QUICK),
        callback=lambda p: seen.append(torch.get_float32_matmul_precision()))
    assert set(seen) == {"medium"} and torch.get_float32_matmul_precision() == before
    seen.clear()
    fit(teacher_data, train_config=TrainConfig(**QUICK),
        callback=lambda p: seen.append(torch.get_float32_matmul_precision()))
    assert set(seen) == {before}  # auto on the CPU: what it always was
    with pytest.raises(RuntimeError):  # restored also when the block fails
        with matmul_precision("medium", "cpu"):
            raise RuntimeError
    assert torch.get_float32_matmul_precision() == before


def test_reduced_precision_stays_within_tolerance_of_float32():
    """bfloat16 products (what ``medium`` allows, and what TF32's 10-bit mantissa bounds from
    below) change a 1,000-cell solve by well under 2 % of the perturbation's effect."""
    p = 64
    m = PerturbODE([f"g{i}" for i in range(p)], ModelConfig(n_modules=32), control_level=np.full(p, 2.0), seed=3)
    x0 = (2 + 0.3 * np.random.default_rng(0).standard_normal((200, p))).astype(np.float32)
    full = m.simulate(x0, ["g1", "g2:overexpression=2"])
    change = np.abs(full[-1] - full[0]).max()
    low = m.simulate(x0, ["g1", "g2:overexpression=2"], precision="bfloat16")
    assert np.abs(low - full).max() < 0.02 * change
    with matmul_precision("medium", "cpu"):
        med = m.simulate(x0, ["g1", "g2:overexpression=2"])
    assert np.abs(med - full).max() < 0.02 * change


# ----------------------------------------------------------------------------- memory and sizing
def test_activation_memory_formula_matches_what_autograd_saves():
    """The formula behind the estimate and the GPU sizing, against the bytes autograd really keeps
    per cell (the storage of every saved tensor, counted once; the difference between two cell
    counts, so that per-solve constants such as the weights drop out)."""
    def saved_bytes(m, batch, n):
        storages = {}

        def pack(t):
            st = t.untyped_storage()
            storages[st.data_ptr()] = st.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            m.integrate(torch.randn(n, m.n_genes), batch, [0.0, m.config.horizon])
        return sum(storages.values())

    for p, K, ck in [(120, 40, False), (240, 40, False), (120, 90, False), (120, 40, True)]:
        m = PerturbODE([f"g{i}" for i in range(p)], ModelConfig(n_modules=K, checkpoint_steps=ck), seed=0)
        batch = m.encode(["control", "g1", "g1"])  # holds its control row: no paired row added
        measured = (saved_bytes(m, batch, 48) - saved_bytes(m, batch, 16)) / (3 * 32)
        formula = activation_bytes_per_cell(p, K, horizon=m.config.horizon, step_size=m.config.step_size,
                                            checkpoint_steps=ck)
        assert measured <= formula <= 1.6 * measured, (p, K, ck, measured, formula)


def _choose(free, p=10_000, K=512, n_conditions=1000, **kw):
    args = dict(batch_conditions=32, cells_per_condition=64, horizon=10.0, step_size=0.5,
                max_cells_per_condition=200)
    args.update(kw)
    return choose_batch(free, p, K, n_conditions=n_conditions, **args)


def test_sizing_fills_a_big_gpu_up_to_the_target_and_scales_the_rate_by_the_square_root():
    """At 10,000 genes an 80 GiB GPU holds far more than the target: 64 groups x 64 cells."""
    c = _choose(80 * GiB)
    assert (c.batch_conditions, c.cells_per_condition, c.limited_by) == (63, 64, "target")
    assert c.cells_per_step == autobatch.TARGET_CELLS
    assert c.lr_factor == pytest.approx(np.sqrt(63 / 32))  # the conditions per step grew 63/32-fold


def test_sizing_is_bounded_by_memory_on_a_small_gpu():
    c = _choose(8 * GiB)  # 10,000 genes: ~3.4 MB of activations per cell
    per_cell = activation_bytes_per_cell(10_000, 512, horizon=10.0, step_size=0.5) + 4 * 10_000 * 4
    assert c.limited_by == "memory"
    assert c.cells_per_step * per_cell <= autobatch.MEMORY_SHARE * 8 * GiB
    assert (c.batch_conditions + 2) * 64 * per_cell > autobatch.MEMORY_SHARE * 8 * GiB - 4 * 4 * 2 * 10_000 * 512
    assert c.lr_factor < 1  # a smaller step than the default: a smaller rate
    tiny = _choose(GiB // 2)  # not even two groups of 64 fit: fewer cells per condition
    assert tiny.batch_conditions == 1 and tiny.cells_per_condition < 64
    assert tiny.lr_factor == 1 / autobatch.MAX_LR_FACTOR


def test_sizing_grows_cells_only_when_the_conditions_run_out():
    c = _choose(80 * GiB, p=1000, K=100, n_conditions=20, max_cells_per_condition=1000)
    assert c.batch_conditions == 20 and c.limited_by == "conditions"
    assert c.cells_per_condition == 4096 // 21 > 64  # the target over the conditions there are ...
    few = _choose(80 * GiB, p=1000, K=100, n_conditions=5, max_cells_per_condition=1000)
    assert few.cells_per_condition == 4 * 64  # ... growing at most four-fold ...
    assert few.lr_factor == 1.0  # as many updates per epoch as before: the rate stays
    capped = _choose(80 * GiB, p=1000, K=100, n_conditions=20, max_cells_per_condition=90)
    assert capped.cells_per_condition == 90  # ... and never beyond what a condition has
    fixed = _choose(80 * GiB, p=1000, K=100, n_conditions=20, vary_cells=False)
    assert fixed.cells_per_condition == 64
    assert fixed.lr_factor == pytest.approx(1.0)  # the step did not change (20 + 1 groups x 64 both times)
    assert c.lr_factor == pytest.approx(1.0)  # 20 conditions a step before and after


def test_sizing_under_data_parallel_plans_per_gpu():
    one, four = _choose(80 * GiB), _choose(80 * GiB, world=4)
    assert four.cells_per_step == 4 * one.cells_per_step
    assert four.lr_factor == autobatch.MAX_LR_FACTOR  # 8x the default step: clipped


def test_fill_device_applies_only_on_cuda_and_explicit_values_win():
    m = PerturbODE([f"g{i}" for i in range(2000)], ModelConfig(n_modules=256), seed=0)
    sizes = [150] * 500
    cfg = TrainConfig()
    assert fill_device(cfg, m, "cpu", sizes, n_start=400) == (cfg, None)
    new, note = fill_device(cfg, m, "cuda", sizes, n_start=400, free_bytes=40 * GiB)
    assert new.auto_batch is False and note.startswith("auto_batch on cuda")
    per_step = (new.batch_conditions + 1) * new.cells_per_condition
    assert new.cells_per_condition == cfg.cells_per_condition  # 500 conditions: only they grow
    assert autobatch.TARGET_CELLS - new.cells_per_condition < per_step <= autobatch.TARGET_CELLS
    assert new.learning_rate == pytest.approx(cfg.learning_rate * np.sqrt(new.batch_conditions / cfg.batch_conditions))
    given, _ = fill_device(TrainConfig(batch_conditions=8, learning_rate=0.01), m, "cuda", sizes, n_start=400,
                           free_bytes=40 * GiB)
    assert given.batch_conditions == 8 and given.learning_rate == 0.01  # explicit values win
    both = TrainConfig(batch_conditions=8, cells_per_condition=32)
    assert fill_device(both, m, "cuda", sizes, n_start=400, free_bytes=40 * GiB) == (both, None)
    off = TrainConfig(auto_batch=False)
    assert fill_device(off, m, "cuda", sizes, n_start=400, free_bytes=40 * GiB) == (off, None)

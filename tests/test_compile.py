"""``compile=True`` compiles once per shape, not once per step (issue 14: it recompiled on CUDA).

The count of graphs dynamo builds (``torch._dynamo.utils.counters``) must stop growing after the
first step: other output-time spacings (time courses), other intervention types and later steps
reuse the graphs. ``TORCH_LOGS=recompiles`` shows the guards when this fails. Compilation takes
tens of seconds on the CPU, hence few, tiny tests.
"""

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from perturbode_core.data.dataset import from_anndata
from perturbode_core.datasets import teacher as synthetic
from perturbode_core.model import ModelConfig, PerturbODE
from perturbode_core.train import TrainConfig, fit

pytestmark = pytest.mark.slow


def _graphs() -> int:
    return counters["stats"]["unique_graphs"]


def test_compiled_solves_reuse_their_graphs_across_step_sizes_and_interventions():
    p = 5
    m = PerturbODE([f"g{i}" for i in range(p)], ModelConfig(n_modules=3), control_level=np.full(p, 1.0), seed=0)
    z0 = torch.randn(4, p, generator=torch.Generator().manual_seed(0))
    eager = m.integrate(z0, m.encode(["control", "g1"]), [0.0, 1.0, 3.0])
    first = m.integrate(z0, m.encode(["control", "g1"]), [0.0, 1.0, 3.0], compile=True)
    torch.testing.assert_close(first, eager, rtol=1e-5, atol=1e-5)  # the same solve
    first.sum().backward()
    built = _graphs()
    # other step sizes (uneven output times) and other intervention types: the same graphs
    # (each batch holds the control: the paired-control correction adds it to batches without)
    for times, perts in [([0.0, 0.7, 3.0], ["control", "g1"]), ([0.0, 1.3, 2.9], ["g2:overexpression", "control"]),
                         ([0.0, 2.0], ["g1:activity=0.5+g4:shift=1", "control"])]:
        out = m.integrate(z0, m.encode(perts), times, compile=True)
        out.sum().backward()
        torch.testing.assert_close(out, m.integrate(z0, m.encode(perts), times), rtol=1e-5, atol=1e-5)
    assert _graphs() == built


def test_second_and_third_training_steps_trigger_no_recompilation():
    teacher = synthetic.teacher_model(6, seed=2)
    perts = ["G000", "G001", "G002:overexpression", "G003:overexpression", "G004", "G005"]
    adata = synthetic.teacher_dataset(teacher, perturbations=perts, cells_per_condition=16, seed=2)
    adata.obs["intervention_type"] = ["overexpression" if "overexpression" in p else
                                      "control" if p == "control" else "knockout" for p in adata.obs["perturbation"]]
    data = from_anndata(adata)
    graphs = []
    cfg = TrainConfig(epochs=1, batch_conditions=2, cells_per_condition=8, compile=True)  # 3 equal steps
    result = fit(data, train_config=cfg,
                 callback=lambda p: p.phase == "means" or graphs.append(_graphs()))  # cell steps only
    assert len(graphs) == 3 and graphs[0] > 0
    assert graphs[1] == graphs[0] and graphs[2] == graphs[0], graphs
    assert np.isfinite(result.history["train_loss"]).all()

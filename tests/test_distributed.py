"""Data-parallel training (torchrun, 2 CPU processes, gloo) matches one process on the same global batch."""

import subprocess
import sys
import textwrap

import numpy as np
import torch

from perturbode_core.train import TrainConfig, fit

WORKER = textwrap.dedent('''
    import sys, torch
    from perturbode_core.train import distributed
    from perturbode_core.datasets import teacher as synthetic
    from perturbode_core.data.dataset import from_anndata
    from perturbode_core.train import TrainConfig, fit

    distributed.init_from_env("cpu")
    data = from_anndata(synthetic.teacher_dataset(synthetic.teacher_model(12, seed=1), cells_per_condition=40, seed=1))
    cfg = TrainConfig(**{CFG})
    out = sys.argv[1]
    r = fit(data, train_config=cfg, checkpoint_path=out + "/ddp.pt")
    if distributed.is_main():
        torch.save({"state": r.model.state_dict(), "loss": r.history.train_loss.tolist()}, out + "/result.pt")
    distributed.shutdown()
''')

CFG = dict(epochs=3, learning_rate=0.02, cells_per_condition=16, batch_conditions=7, seed=5, noise=0.05,
           val_fraction=0.2)


def test_torchrun_two_ranks_matches_single_process(tmp_path):
    from perturbode_core.datasets import teacher as synthetic
    from perturbode_core.data.dataset import from_anndata

    worker = tmp_path / "worker.py"
    worker.write_text(WORKER.replace("{CFG}", repr(CFG)))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(worker),
         str(tmp_path)], capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = torch.load(tmp_path / "result.pt", weights_only=True)
    assert (tmp_path / "ddp.pt").exists()  # rank 0 wrote the checkpoint

    data = from_anndata(synthetic.teacher_dataset(synthetic.teacher_model(12, seed=1), cells_per_condition=40, seed=1))
    single = fit(data, train_config=TrainConfig(**CFG))
    np.testing.assert_allclose(ddp["loss"], single.history.train_loss.to_numpy(), rtol=1e-4)
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(ddp["state"][k], v, rtol=1e-4, atol=1e-5, msg=k)


def test_condition_blocks_cover_every_condition_once():
    from perturbode_core.train.batches import shard_conditions

    for n in range(0, 12):
        for world in (1, 2, 3, 5):
            blocks = [shard_conditions(n, r, world) for r in range(world)]
            covered = [i for a, b in blocks for i in range(a, b)]
            assert covered == list(range(n))

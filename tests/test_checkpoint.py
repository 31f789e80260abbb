"""Checkpoints round-trip exactly, and unsafe or unfit files are refused with a message."""

import os

import numpy as np
import pytest
import torch

from perturbode_core.io.checkpoint import (FORMAT_VERSION, check_genes, load_checkpoint, load_model,
                                        save_checkpoint)
from perturbode_core.errors import PerturbODEError


def test_save_load_gives_identical_predictions(trained, teacher_data, tmp_path):
    path = tmp_path / "run" / "model.pt"
    save_checkpoint(path, trained.model, best_state_dict=trained.model.state_dict(),
                    history=trained.history.to_dict("records"), data=teacher_data)
    loaded = load_model(path)
    x0 = teacher_data.control_cells()[:20]
    np.testing.assert_array_equal(loaded.simulate(x0, ["G001", "G002+G005"]),
                                  trained.model.simulate(x0, ["G001", "G002+G005"]))
    ckpt = load_checkpoint(path)
    assert ckpt.gene_names == trained.model.gene_names
    assert ckpt.versions["torch"].startswith("2.")
    assert ckpt.data_info["perturbations"]["G001"] == "G001:knockout"
    assert not ckpt.resumable and ckpt.settings.train_config is None  # saved without a training state
    assert [f for f in os.listdir(path.parent) if f.endswith(".tmp")] == []  # atomic: no leftovers


def test_fit_checkpoint_holds_optimizer_rng_history(teacher_data, tmp_path):
    from perturbode_core.train import TrainConfig, fit

    fit(teacher_data, train_config=TrainConfig(epochs=2, cells_per_condition=8), checkpoint_path=tmp_path / "m.pt")
    b = load_checkpoint(tmp_path / "m.pt")
    rs = b.resume_state
    assert rs.epoch == 2 and isinstance(rs.rng, torch.Tensor) and "state" in rs.optimizer
    assert len(b.history) == 2 and b.settings.train_config.epochs == 2
    assert b.settings.train_conditions == list(teacher_data.conditions) and b.settings.best_epoch in (1, 2)


def test_code_in_checkpoint_is_refused_and_never_runs(tmp_path, trained):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "perturbode-checkpoint", "format_version": 1, "payload": Evil()}, path)
    with pytest.raises(PerturbODEError, match="could run code"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("damage, message", [
    ("truncate", "damaged or truncated|Not a PerturbODE checkpoint"),
    ("text", "Not a PerturbODE checkpoint"),
    ("other", "holds something else"),
    ("newer", "newer than this PerturbODE"),
])
def test_damaged_foreign_and_newer_files(damage, message, tmp_path, trained):
    path = tmp_path / "m.pt"
    save_checkpoint(path, trained.model)
    if damage == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])
    elif damage == "text":
        path.write_text("hello")
    elif damage == "other":
        torch.save({"weights": torch.zeros(3)}, path)
    elif damage == "newer":
        b = torch.load(path, weights_only=True)
        b["format_version"] = FORMAT_VERSION + 1
        torch.save(b, path)
    with pytest.raises(PerturbODEError, match=message):
        load_model(path)


def test_checkpoint_for_other_genes_is_refused(trained):
    genes = list(trained.model.gene_names)
    check_genes(trained.model, genes)
    with pytest.raises(PerturbODEError, match="other genes.*missing from the data \\(G000\\)"):
        check_genes(trained.model, genes[1:] + ["XYZ"])
    with pytest.raises(PerturbODEError, match="another order"):
        check_genes(trained.model, genes[::-1])


def test_resume_refuses_data_with_other_genes(teacher_data, tmp_path):
    from perturbode_core.data.dataset import from_anndata
    from perturbode_core.train import TrainConfig, fit

    fit(teacher_data, train_config=TrainConfig(epochs=1, cells_per_condition=8), checkpoint_path=tmp_path / "m.pt")
    other = teacher_data.to_anndata()
    other.var_names = [g.lower() for g in other.var_names]
    other.obs["perturbation"] = [p.lower() for p in other.obs["perturbation"]]
    with pytest.raises(PerturbODEError, match="other genes"):
        fit(from_anndata(other), resume=tmp_path / "m.pt")

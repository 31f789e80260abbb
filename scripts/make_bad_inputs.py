"""Generate the bad-input corpus of tests/bad_inputs/ (issue 8): every wrong file a user can hand us.

Run ``python scripts/make_bad_inputs.py [OUT_DIR]`` (default ``tests/bad_inputs``). Each item is
written by code below (no hand-made binaries) and described in ``manifest.json``:

``name``      the item's name (unique)
``file``      the file in the corpus
``kind``      ``h5ad``, ``gmt``, ``edges`` or ``checkpoint`` (which entry points read it)
``options``   loading options (``control``, ``normalize``, ``perturbation_key``)
``expect``    ``error`` (a PerturbODEError with ``message``), ``warning`` (loads, with a
              PerturbODEWarning matching ``message``) or ``ok`` (loads cleanly)
``message``   a regular expression the message must match
``cli``       optional ``{expect, message}`` where the command line differs (``train`` refuses data it
              cannot train on that the library loads)
``dashboard`` optional: what the dashboard does differently (its column and control pickers only
              offer values the file has, so some errors cannot be made there)

Files are kept tiny (a few KB each). The 2 GB upload is never a file here: the tests check the
configured upload limit and the size check with a sparse file made at test time.

The code-running checkpoint (``evil_pickle.pt``) holds a pickle whose payload writes the file named
by the environment variable ``PERTURBODE_PWNED_MARKER`` (and does nothing when it is unset): the
tests prove the payload is live with a plain unsafe ``torch.load`` and that no entry point runs it.
"""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
GENES = ["GATA1", "SPI1", "CEBPA", "KLF1", "FLI1", "RUNX1"]
CONDITIONS = {"control": 16, "GATA1": 8, "SPI1": 8, "CEBPA": 8, "GATA1+SPI1": 8}

#: marker variable read by the payload of evil_pickle.pt
MARKER_ENV = "PERTURBODE_PWNED_MARKER"
PAYLOAD = ("import os, pathlib\n"
           f"_p = os.environ.get('{MARKER_ENV}')\n"
           "if _p: pathlib.Path(_p).write_text('the checkpoint ran code')\n")


class _RunsCode:
    """Unpickling this calls exec(PAYLOAD): what a malicious checkpoint would do."""

    def __reduce__(self):
        return (exec, (PAYLOAD,))


def _adata(*, X=None, genes=None, labels=None, obs_extra=None, sparse=False, key="perturbation"):
    import anndata as ad
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    genes = list(GENES if genes is None else genes)
    if labels is None:
        labels = [c for c, n in CONDITIONS.items() for _ in range(n)]
    if X is None:
        X = rng.gamma(2.0, 0.5, size=(len(labels), len(genes))).astype(np.float32)
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(len(labels))])
    if key is not None:
        obs[key] = pd.Categorical(labels)
    for k, v in (obs_extra or {}).items():
        obs[k] = v
    a = ad.AnnData(X=sp.csr_matrix(X) if sparse else X, obs=obs, var=pd.DataFrame(index=genes))
    return a


def _write(a, path: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicated var names warn on write; that is the point
        a.write_h5ad(path)


def build(out: Path) -> list[dict]:
    """Write every item into ``out`` and return the manifest entries."""
    import h5py
    import torch

    from perturbode_core.io.checkpoint import save_checkpoint
    from perturbode_core.model import PerturbODE

    out.mkdir(parents=True, exist_ok=True)
    items: list[dict] = []

    def item(name, file, kind, expect, message, options=None, dashboard=None, cli=None):
        items.append({"name": name, "file": file, "kind": kind, "expect": expect, "message": message,
                      "options": options or {}, "cli": cli, "dashboard": dashboard})

    n = sum(CONDITIONS.values())
    labels = [c for c, k in CONDITIONS.items() for _ in range(k)]

    # ---------------------------------------------------------------- the good base files
    _write(_adata(), out / "base.h5ad")
    model = PerturbODE(GENES)
    save_checkpoint(out / "base_model.pt", model)

    # ---------------------------------------------------------------- .h5ad files
    raw = (out / "base.h5ad").read_bytes()
    (out / "truncated.h5ad").write_bytes(raw[: len(raw) // 2])
    item("truncated_h5ad", "truncated.h5ad", "h5ad", "error", r"damaged or truncated")

    (out / "not_hdf5.h5ad").write_text("cell,GATA1,SPI1\ncell0,1.0,2.0\n", encoding="utf-8")
    item("not_hdf5", "not_hdf5.h5ad", "h5ad", "error", r"Not an HDF5")

    (out / "zero_bytes.h5ad").write_bytes(b"")
    item("zero_bytes", "zero_bytes.h5ad", "h5ad", "error", r"empty \(0 bytes\)")

    with h5py.File(out / "hdf5_not_anndata.h5ad", "w") as fh:
        fh.create_dataset("matrix", data=np.zeros((3, 3)))
    item("hdf5_not_anndata", "hdf5_not_anndata.h5ad", "h5ad", "error", r"HDF5 file, but not an AnnData.*matrix")

    _write(_adata(X=np.zeros((0, 0), np.float32), genes=[], labels=[]), out / "empty_anndata.h5ad")
    item("empty_anndata", "empty_anndata.h5ad", "h5ad", "error", r"AnnData is empty|no obs columns",
         dashboard={"expect": "error", "message": r"empty|no obs columns"})

    _write(_adata(X=np.zeros((0, len(GENES)), np.float32), labels=[]), out / "zero_cells.h5ad")
    item("zero_cells", "zero_cells.h5ad", "h5ad", "error", r"AnnData is empty \(0 cells")

    X = _adata().X.copy()
    X[3, 1] = np.nan
    _write(_adata(X=X), out / "nan_values.h5ad")
    item("nan_values", "nan_values.h5ad", "h5ad", "error", r"NaN or infinite.*SPI1")

    X = _adata().X.copy()
    X[5, 2], X[6, 0] = np.inf, -np.inf
    _write(_adata(X=X), out / "inf_values.h5ad")
    item("inf_values", "inf_values.h5ad", "h5ad", "error", r"2 expression value\(s\) are NaN or infinite")

    X = np.round(_adata().X * 40)
    X[0, 0] = -3
    _write(_adata(X=X), out / "negative_counts.h5ad")
    item("negative_counts_normalize", "negative_counts.h5ad", "h5ad", "error", r"negative values",
         options={"normalize": True})

    counts = np.random.default_rng(1).poisson(30, size=(n, len(GENES))).astype(np.float32)
    counts[0, 0] = 200
    _write(_adata(X=counts), out / "raw_counts.h5ad")
    item("raw_counts_not_normalised", "raw_counts.h5ad", "h5ad", "warning", r"looks like raw counts")
    item("raw_counts_normalised", "raw_counts.h5ad", "h5ad", "ok", "", options={"normalize": True})

    _write(_adata(sparse=True), out / "sparse_matrix.h5ad")
    item("sparse_matrix", "sparse_matrix.h5ad", "h5ad", "ok", "")

    _write(_adata(genes=["GATA1", "SPI1", "CEBPA", "GATA1", "FLI1", "SPI1"]), out / "duplicated_genes.h5ad")
    item("duplicated_genes", "duplicated_genes.h5ad", "h5ad", "error", r"Duplicated gene names: GATA1, SPI1")

    _write(_adata(key=None, obs_extra={"batch": ["b1"] * (n // 2) + ["b2"] * (n - n // 2)}),
           out / "no_perturbation_column.h5ad")
    item("no_perturbation_column", "no_perturbation_column.h5ad", "h5ad", "error",
         r"No perturbation column 'perturbation'",
         # the page lists obs columns; using 'batch' as the perturbation column names targets that are no genes
         dashboard={"expect": "warning", "message": r"none of the 1 target\(s\) \(b2\) is among the measured genes"})

    _write(_adata(labels=[lab.replace("control", "NTC-guide") for lab in labels]), out / "control_absent.h5ad")
    item("control_absent", "control_absent.h5ad", "h5ad", "error",
         r"Control label 'control' does not occur",
         # the page only offers labels the file has: 'control' cannot be chosen
         dashboard={"expect": "not_offered", "message": "control"},
         # the command line without --control looks for the usual labels, and says which occur
         cli={"expect": "error", "message": r"Could not find the control cells.*values include NTC-guide"})

    one = labels + ["CEBPA+SPI1"]
    _write(_adata(labels=one, X=np.random.default_rng(2).gamma(2.0, 0.5, (len(one), len(GENES)))),
           out / "one_cell_condition.h5ad")
    item("one_cell_condition", "one_cell_condition.h5ad", "h5ad", "warning", r"single cell/profile.*CEBPA\+SPI1")

    _write(_adata(labels=[lab.replace("CEBPA", "NOTAGENE") for lab in labels]), out / "targets_not_genes.h5ad")
    # targets outside the genes are unmeasured regulators (a note), refused only when asked
    item("targets_not_genes", "targets_not_genes.h5ad", "h5ad", "warning", r"unmeasured regulators: NOTAGENE")
    item("targets_not_genes_strict", "targets_not_genes.h5ad", "h5ad", "error", r"not in the model's genes: NOTAGENE",
         options={"strict_targets": True},
         dashboard={"expect": "warning", "message": r"unmeasured regulators: NOTAGENE"})  # no strict switch there

    guides = np.zeros((n, 3), np.float32)
    guides[np.arange(n), [{"control": 0, "GATA1": 1}.get(lab, 2) for lab in labels]] = 20
    a = _adata(obs_extra={})
    a.obsm["guide_counts"] = guides
    a.uns["guide_names"] = np.array(["NT_1", "GATA1_1"])  # three guide columns, two names
    _write(a, out / "guide_matrix_mismatch.h5ad")
    item("guide_matrix_mismatch", "guide_matrix_mismatch.h5ad", "h5ad", "error",
         r"2 guide names for 3 guide columns.*obsm\['guide_counts'\]", options={"guides": "guide_counts"},
         dashboard={"expect": "ok", "message": ""})  # the page reads guides only when chosen

    names = ["NT_1", "GATA1_1", "SPI1_1", "CEBPA_1"]
    guides = np.zeros((n, 4), np.float32)
    for i, lab in enumerate(labels):
        first = lab.split("+")[0]
        guides[i, {"control": 0, "GATA1": 1, "SPI1": 2, "CEBPA": 3}[first]] = 20
        if lab == "CEBPA":  # every CEBPA cell also carries an SPI1 guide: no clear guide
            guides[i, 2] = 20
    a = _adata()
    a.obsm["guide_counts"] = guides
    a.uns["guide_names"], a.uns["guide_targets"] = np.array(names), np.array(["control", "GATA1", "SPI1", "CEBPA"])
    _write(a, out / "guide_condition_empty.h5ad")
    item("guide_condition_empty", "guide_condition_empty.h5ad", "h5ad", "warning",
         r"8 several guides; conditions: CEBPA \(no cell with a clear guide\)", options={"guides": "guide_counts"},
         dashboard={"expect": "ok", "message": ""})

    _write(_adata(labels=[lab.replace("GATA1+SPI1", "GATA1+FOXP3") for lab in labels]),
           out / "combination_unknown_gene.h5ad")
    item("combination_unknown_gene", "combination_unknown_gene.h5ad", "h5ad", "warning",
         r"unmeasured regulators: FOXP3")

    lab_nan = pd.Series(labels, dtype=object)
    lab_nan[9] = None
    a = _adata()
    a.obs["perturbation"] = pd.Categorical(lab_nan)
    _write(a, out / "missing_label.h5ad")
    item("missing_label", "missing_label.h5ad", "h5ad", "error", r"no perturbation label",
         dashboard={"expect": "error", "message": r"perturbation label|nan"})

    _write(_adata(obs_extra={"time": ["early"] * (n // 2) + ["late"] * (n - n // 2)}), out / "time_not_numeric.h5ad")
    item("time_not_numeric", "time_not_numeric.h5ad", "h5ad", "error", r"Time column 'time' is not numeric")

    _write(_adata(labels=["control"] * n), out / "only_control.h5ad")
    # loads (control cells alone are fine to simulate from) but cannot be trained on
    item("only_control", "only_control.h5ad", "h5ad", "ok", "",
         cli={"expect": "error", "message": r"no perturbed conditions"})

    _write(_adata(obs_extra={"intervention_type": ["teleportation"] * n}), out / "unknown_intervention_type.h5ad")
    item("unknown_intervention_type", "unknown_intervention_type.h5ad", "h5ad", "error", r"teleportation")

    # ---------------------------------------------------------------- gene-set (GMT) files
    (out / "latin1.gmt").write_bytes("HALLMARK_HÉME\tna\tGATA1\tKLF1\tFLI1\n".encode("latin-1"))
    item("gmt_not_utf8", "latin1.gmt", "gmt", "error", r"not UTF-8 text")
    (out / "too_few_fields.gmt").write_text("SET_A\tGATA1\n", encoding="utf-8")
    item("gmt_too_few_fields", "too_few_fields.gmt", "gmt", "error", r"line 1")
    (out / "not_gzip.gmt").write_bytes(b"\x1f\x8b\x08\x00garbage")
    item("gmt_bad_gzip", "not_gzip.gmt", "gmt", "error", r"gzip")

    # ---------------------------------------------------------------- ground-truth edge lists
    (out / "edges_missing_columns.csv").write_text("regulator,gene\nGATA1,KLF1\n", encoding="utf-8")
    item("edges_missing_columns", "edges_missing_columns.csv", "edges", "error", r"source|target")
    (out / "edges_only_source.csv").write_text("source\nGATA1\n", encoding="utf-8")
    item("edges_only_source", "edges_only_source.csv", "edges", "error", r"target")
    (out / "edges_not_text.csv").write_bytes(b"source,target\n\xff\xfe\x00GATA1,KLF1\n")
    item("edges_not_text", "edges_not_text.csv", "edges", "error", r"not a text file|UTF-8")
    (out / "edges_bad_sign.csv").write_text("source,target,sign\nGATA1,KLF1,sideways\n", encoding="utf-8")
    item("edges_bad_sign", "edges_bad_sign.csv", "edges", "error", r"sideways|sign")

    # ---------------------------------------------------------------- checkpoints
    torch.save({"format": "perturbode-checkpoint", "format_version": 1, "model_config": {}, "gene_names": GENES,
                "state_dict": {}, "payload": _RunsCode()}, out / "evil_pickle.pt")
    item("ckpt_runs_code", "evil_pickle.pt", "checkpoint", "error", r"could run code")

    good = (out / "base_model.pt").read_bytes()
    (out / "truncated_model.pt").write_bytes(good[: len(good) * 2 // 3])
    item("ckpt_truncated", "truncated_model.pt", "checkpoint", "error", r"damaged or truncated|Not a PerturbODE checkpoint")

    # flip bytes inside the stored tensors (the zip directory stays intact)
    corrupt = bytearray(good)
    with zipfile.ZipFile(out / "base_model.pt") as zf:
        info = max((i for i in zf.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for k in range(start, start + min(info.file_size, 64)):
        corrupt[k] ^= 0x5A
    (out / "corrupted_model.pt").write_bytes(bytes(corrupt))
    item("ckpt_corrupted", "corrupted_model.pt", "checkpoint", "error", r"damaged|corrupted")

    save_checkpoint(out / "other_genes_model.pt", PerturbODE(["Gata1", "Spi1", "Cebpa", "Klf1", "Fli1"]))
    item("ckpt_other_genes", "other_genes_model.pt", "checkpoint", "error", r"trained on other genes")

    bundle = torch.load(out / "base_model.pt", weights_only=True)
    bundle["format_version"] = 99
    torch.save(bundle, out / "future_version_model.pt")
    item("ckpt_future_version", "future_version_model.pt", "checkpoint", "error", r"format version 99, newer")

    torch.save({"weights": torch.zeros(3)}, out / "foreign_torch_file.pt")
    item("ckpt_foreign", "foreign_torch_file.pt", "checkpoint", "error", r"Not a PerturbODE checkpoint")

    (out / "text_model.pt").write_text("this is not a model\n", encoding="utf-8")
    item("ckpt_text", "text_model.pt", "checkpoint", "error", r"Not a PerturbODE checkpoint")

    names = [i["name"] for i in items]
    assert len(names) == len(set(names)), "item names must be unique"
    manifest = {"generator": "scripts/make_bad_inputs.py", "marker_env": MARKER_ENV, "genes": GENES,
                "base_data": "base.h5ad", "base_model": "base_model.pt", "items": items}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return items


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else ROOT / "tests" / "bad_inputs"
    if out.exists():
        shutil.rmtree(out)
    sys.path.insert(0, str(ROOT))
    items = build(out)
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {len(items)} bad inputs to {out} ({size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

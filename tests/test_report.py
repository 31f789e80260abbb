"""The HTML report is self-contained (opens offline) and holds what it should; figure export; compare."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from perturbode_core import plots
from perturbode_core.io import checkpoint
from perturbode_core.io.checkpoint import TrainedSettings
from perturbode_core.tools import evaluate as compare
from perturbode_core.tools import grn
from perturbode_core.tools import report
from perturbode_core.tools import simulate
from perturbode_core.errors import PerturbODEError


@pytest.fixture(scope="module")
def built(trained, teacher_data, teacher_adata, tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.html"
    eff = simulate.effect_table(trained.model, teacher_data.control_cells(), "G003")
    metrics = pd.DataFrame([{"method": "PerturbODE", "aupr": 0.7, "auroc": 0.9},
                            {"method": "correlation", "aupr": 0.3, "auroc": 0.6}])
    text = report.build_report(report.ReportInputs(
        title="Teacher <network>", data=teacher_data, model=trained.model, settings=trained.settings,
        history=trained.history, truth=pd.DataFrame(teacher_adata.uns["true_edges"]),
        simulations={"G003 knockout": eff}, metrics={"Network": metrics},
        metric_notes={"Network": "Scored against the simulator's network."},
        modules=pd.DataFrame({"module": [0, 1], "top_targets": ["G001+", "G002-"]}),
        notes="Made for <b>tests</b>"), path)
    return path, text


def test_report_contains_sections_and_network_figure(built):
    path, text = built
    assert path.read_text(encoding="utf-8") == text
    for anchor in ("dataset", "training", "network", "modules", "simulations", "metrics", "reproducibility"):
        assert f'id="{anchor}"' in text
    assert 'data-figure="network-figure"' in text and 'id="network-figure"' in text
    assert 'id="loss-figure"' in text and 'id="g-heatmap"' in text
    assert "G003 knockout" in text and "PerturbODE" in text
    assert "torch" in text and "seed" in text  # versions and seed
    # user text is escaped, never injected as markup
    assert "Teacher &lt;network&gt;" in text and "<b>tests</b>" not in text
    # what was held out is said in words: G003 and G007 were never shown to the model
    assert "never shown: G003, G007" in text and "Scored against the simulator" in text


def test_report_opens_offline(built):
    _, text = built
    # no script or stylesheet is fetched from anywhere: plotly.js is inlined exactly once
    assert not re.search(r"<script[^>]+src\s*=\s*[\"']?(https?:)?//", text, flags=re.I)
    assert not re.search(r"<link[^>]+href\s*=\s*[\"']?(https?:)?//", text, flags=re.I)
    assert text.count("Plotly.newPlot") >= 3
    n_lib = len(re.findall(r"plotly\.js v\d", text))
    assert n_lib == 1, n_lib  # the library banner appears once: inlined with the first figure only


def test_report_minimal_and_atomic(tmp_path, trained):
    # only versions: still a valid page
    text = report.build_report(report.ReportInputs(versions={"python": "3"}))
    assert "<html" in text and 'id="reproducibility"' in text and 'id="network"' not in text
    # edges without a model give a network figure
    edges = grn.model_edges(trained.model, top_k=5)
    text = report.build_report(report.ReportInputs(edges=edges), tmp_path / "r.html")
    assert 'id="network-figure"' in text
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # no temporary file left behind
    with pytest.raises(PerturbODEError):
        report.build_report(report.ReportInputs(edges=edges), tmp_path)  # a folder is not a file


def test_figure_bytes_formats_and_fallback(monkeypatch):
    fig = go.Figure(go.Scatter(x=[0, 1], y=[1, 0]))
    data, mime, ext = report.figure_bytes(fig, "html")
    assert ext == "html" and mime == "text/html" and b"<html" in data
    with pytest.raises(PerturbODEError):
        report.figure_bytes(fig, "gif")
    # without a browser, an image request falls back to HTML instead of failing
    monkeypatch.setattr(report, "browser_path", lambda: None)
    data, mime, ext = report.figure_bytes(fig, "png")
    assert ext == "html" and b"<html" in data


def test_figure_bytes_png_svg_with_system_chromium():
    assert report.browser_path() is not None, "no Chromium for kaleido: apt-get install chromium (.ci/run does)"
    fig = plots.loss_figure(pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [3.0, 2.0, 1.5]}))
    png, mime, ext = report.figure_bytes(fig, "png", scale=1)
    assert ext == "png" and mime == "image/png" and png[:8] == b"\x89PNG\r\n\x1a\n"
    svg, mime, ext = report.figure_bytes(fig, "svg")
    assert ext == "svg" and b"<svg" in svg[:200]


def test_package_versions_in_report_default():
    text = report.build_report(report.ReportInputs())
    for name, version in checkpoint.package_versions().items():
        assert f"<td>{name}</td><td>{version}</td>" in text


# ------------------------------------------------------------------------------------ compare
def test_compare_network_prediction_stability(trained, teacher_data, teacher_adata):
    truth = teacher_adata.uns["true_edges"]
    G = grn.grn_matrix(trained.model)
    table = compare.network_comparison(G, trained.model.gene_names, truth, data=teacher_data,
                                       baselines=("correlation", "knockout_zscore"))
    assert list(table["method"]) == [compare.MODEL_NAME, "correlation", "knockout_zscore"]
    assert table["aupr"].between(0, 1).all() and table.attrs["random"]["auroc"] == 0.5
    with pytest.raises(PerturbODEError):
        compare.network_comparison(G, trained.model.gene_names, truth, data=teacher_data, baselines=("nope",))

    summary, per = compare.prediction_comparison(trained.model, teacher_data, trained.heldout,
                                                 baselines=["no_change", "mean_shift"])
    assert list(summary["method"]) == [compare.MODEL_NAME, "no_change", "mean_shift"]
    assert set(per["condition"]) == set(trained.heldout) and np.isfinite(summary["w2"]).all()
    with pytest.raises(PerturbODEError):
        compare.prediction_comparison(trained.model, teacher_data, ["control"])

    train, val = trained.settings.seen_conditions(teacher_data)
    assert not set(trained.heldout) & set(train) and val == []
    assert trained.settings.heldout_conditions(teacher_data) == trained.heldout
    unknown = TrainedSettings(model_config=trained.model.config)  # nothing known: everything counts as seen
    assert unknown.seen_conditions(teacher_data)[0] == list(teacher_data.conditions)
    assert unknown.heldout_conditions(teacher_data) == []

    rng = np.random.default_rng(0)
    out = compare.stability_summary([G, G + rng.normal(scale=1e-3, size=G.shape)], trained.model.gene_names,
                                    truth=truth, top_k=10)
    assert out["n_runs"] == 2 and out["frequency_counts"]["edges"].sum() == len(out["consensus"])
    assert set(out["spread"].index) >= {"aupr", "auroc"}
    with pytest.raises(PerturbODEError):
        compare.stability_summary([G], trained.model.gene_names)

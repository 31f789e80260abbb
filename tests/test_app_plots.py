"""Figure builders of the Data, Train and Simulate pages (pure functions; no browser)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from perturbode_core import plots
from perturbode_core.tools import embedding
from perturbode_core.tools.simulate import compare_effects


def test_pca_fit_and_project():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)) * np.array([5, 1, 0.1, 0.1, 0.1])
    fit = embedding.pca_fit(X)
    assert fit["components"].shape == (2, 5) and fit["explained"][0] > 0.9
    assert abs(fit["components"][0, 0]) > 0.99 and fit["components"][0, 0] > 0  # sign fixed
    assert embedding.pca_project(X, fit).shape == (200, 2)
    assert embedding.pca_project(np.stack([X, X]), fit).shape == (2, 200, 2)  # (T, n, p) works too
    assert embedding.pca_fit(X[:, :1])["components"].shape == (2, 1)  # one gene: padded
    assert list(embedding.subsample(10, 20)) == list(range(10)) and len(embedding.subsample(100, 7)) == 7


def test_embedding_and_counts():
    coords = np.random.default_rng(0).normal(size=(50, 2))
    labels = np.array(["control"] * 20 + ["A"] * 20 + ["B"] * 10)
    fig = plots.embedding_figure(coords, labels, control="control")
    assert isinstance(fig, go.Figure) and fig.data[0].name.startswith("control")
    assert sum(len(t.x) for t in fig.data) == 50
    many = np.array([f"c{i}" for i in range(50)])
    assert len(plots.embedding_figure(coords, many, max_legend=5).data) == 6  # 5 + "other"
    per = pd.DataFrame({"condition": ["control", "A", "B"], "cells": [20, 20, 10]})
    assert list(plots.cells_per_condition_figure(per, control="control").data[0].y) == [20, 20, 10]


def test_loss_figure():
    hist = [{"epoch": e, "train_loss": 1 / e, "val_loss": 2 / e} for e in range(1, 6)]
    fig = plots.loss_figure(hist)
    assert [t.name for t in fig.data] == ["training loss", "validation loss"]
    assert fig.layout.yaxis.type == "log"
    assert len(plots.loss_figure([]).data) == 0
    assert len(plots.loss_figure([{"epoch": 1, "train_loss": 0.5, "val_loss": None}]).data) == 1


def test_simulation_figures():
    T, p, n = 5, 4, 6
    times = np.linspace(0, 10, T)
    mean = np.random.default_rng(0).normal(size=(T, 2, p))
    fig = plots.trajectory_figure(times, mean, np.abs(mean) * 0.1, ["a", "b", "c", "d"], ["a", "c", "zz"])
    assert len(fig.data) == 2 * 2 * 2  # 2 genes x 2 simulations x (band + line)
    sim = np.random.default_rng(1).normal(size=(T, n, 2))
    bg = np.random.default_rng(2).normal(size=(30, 2))
    lab = np.array(["control"] * 10 + ["KO"] * 10 + ["X"] * 10)
    fig = plots.moving_cells_figure(bg, lab, sim, times, control="control", measured="KO")
    assert len(fig.frames) == T and "measured KO" in [t.name for t in fig.data]
    effects = pd.DataFrame({"gene": list("abcd"), "z_change": [-2.0, 1.0, 0.5, -0.1], "mean_change": [-1, 1, 0, 0],
                            "targeted": [True, False, False, False]})
    assert list(plots.effect_figure(effects, top=3).data[0].y) == ["c", "b", "a"]
    other = effects.assign(z_change=[-1.0, 2.0, 0.0, 0.0])
    wide = compare_effects({"A": effects, "B": other})
    assert list(wide["gene"][:2]) in (["a", "b"], ["b", "a"]) and list(wide.columns) == ["gene", "A", "B"]
    assert len(plots.comparison_figure({"A": effects, "B": other}).data) == 2  # diagonal + points
    assert len(plots.comparison_figure({"A": effects, "B": other, "C": effects}).data) == 3  # grouped bars

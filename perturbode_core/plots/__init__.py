"""Plotly figure builders: pure functions from tables and arrays to ``plotly.graph_objects.Figure``.

Nothing here imports streamlit; every builder is tested without a browser and shared by the
dashboard pages and the HTML report. Colours come from :mod:`~perturbode_core.plots.style` only.

Modules
-------
style             the colour language (signs, known-network overlay, modules, conditions) and margins
data_plots        cells on an embedding, cells per condition, knockout efficiency, on-target levels
training_plots    loss curves
network_plots     the gene network (node-link, known-network overlay) and the G heatmap
module_plots      modules: module network, enrichment dot plot and heatmap, module activity
simulation_plots  trajectories, cells moving on the embedding, per-gene effects, scenario comparison
screen_plots      in-silico screens
metric_plots      metrics of the model beside its baselines

The builders are loaded on first use (``plots.network_figure`` imports ``network_plots`` then),
so a page that draws an embedding does not pay for the module and enrichment machinery.
"""

from __future__ import annotations

import importlib

#: Public name -> the module that defines it.
_WHERE = {
    "cells_per_condition_figure": "data_plots", "embedding_figure": "data_plots",
    "knockout_efficiency_figure": "data_plots", "target_level_figure": "data_plots",
    "metric_bar_figure": "metric_plots",
    "enrichment_dotplot": "module_plots", "enrichment_heatmap": "module_plots",
    "module_activity_heatmap": "module_plots", "module_network_figure": "module_plots",
    "g_heatmap": "network_plots", "network_figure": "network_plots", "network_layout": "network_plots",
    "truth_overlay_figure": "network_plots",
    "comparison_figure": "simulation_plots", "effect_figure": "simulation_plots",
    "moving_cells_figure": "simulation_plots", "trajectory_figure": "simulation_plots",
    "screen_figure": "screen_plots",
    "SIGN_COLORS": "style", "TRUTH_STYLES": "style",
    "loss_figure": "training_plots",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'perturbode_core.plots' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"perturbode_core.plots.{_WHERE[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))

"""Plotly figure builders: pure functions from tables and arrays to ``plotly.graph_objects.Figure``.

Nothing here imports streamlit; every builder is tested without a browser and shared by the
dashboard pages and the HTML report. Colours come from :mod:`~perturbode_core.plots.style` only.

Modules
-------
style             the colour language (signs, known-network overlay, modules, conditions)
data_plots        cells on an embedding, cells per condition, knockout efficiency
training_plots    loss curves
network_plots     the gene network (node-link, known-network overlay) and the G heatmap
module_plots      modules: module network, enrichment dot plot and heatmap, module activity
simulation_plots  trajectories, cells moving on the embedding, per-gene effects, scenario comparison
metric_plots      metrics of the model beside its baselines
"""

from perturbode_core.plots.data_plots import cells_per_condition_figure, embedding_figure, knockout_efficiency_figure
from perturbode_core.plots.metric_plots import metric_bar_figure
from perturbode_core.plots.module_plots import (enrichment_dotplot, enrichment_heatmap, module_activity_heatmap,
                                                module_network_figure)
from perturbode_core.plots.network_plots import g_heatmap, network_figure, network_layout, truth_overlay_figure
from perturbode_core.plots.simulation_plots import (comparison_figure, effect_figure, moving_cells_figure,
                                                    trajectory_figure)
from perturbode_core.plots.style import SIGN_COLORS, TRUTH_STYLES
from perturbode_core.plots.training_plots import loss_figure

__all__ = [
    "SIGN_COLORS", "TRUTH_STYLES", "cells_per_condition_figure", "comparison_figure", "effect_figure",
    "embedding_figure", "enrichment_dotplot", "knockout_efficiency_figure", "enrichment_heatmap", "g_heatmap", "loss_figure", "metric_bar_figure",
    "module_activity_heatmap", "module_network_figure", "moving_cells_figure", "network_figure", "network_layout",
    "trajectory_figure", "truth_overlay_figure",
]

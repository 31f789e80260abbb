"""Accuracy of networks and predictions (DESIGN section 2, issue 4).

Submodules
----------
network        AUPR, AUROC, early precision, P/R/F1, sign accuracy against a known edge list
interventional share of predicted edges whose regulator's perturbation moves the target
prediction    W2, energy distance, MMD, Pearson of mean changes, MSE between populations
stability     consensus network over seeds and the spread of metrics
literature    precision of the top edges against published TF networks (CollecTRI, TRRUST) beside a
              degree-preserving random expectation, where no ground truth exists

Baselines to put beside every number live in :mod:`perturbode_core.tools.baselines`.
"""

from perturbode_core.tools.metrics.interventional import interventional_check
from perturbode_core.tools.metrics.literature import literature_support, load_reference
from perturbode_core.tools.metrics.network_metrics import metrics_frame, network_metrics
from perturbode_core.tools.metrics.prediction_metrics import energy_distance, mmd, score_prediction, score_predictions, w2_distance
from perturbode_core.tools.metrics.stability import consensus_edges, metric_spread

__all__ = [
    "consensus_edges",
    "energy_distance",
    "interventional_check",
    "literature_support",
    "load_reference",
    "metric_spread",
    "metrics_frame",
    "mmd",
    "network_metrics",
    "score_prediction",
    "score_predictions",
    "w2_distance",
]

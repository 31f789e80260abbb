"""Built-in datasets and the simulator that makes data with a known network.

Public API
----------
simulate_screen        simulate a single-cell perturbation screen on a :class:`GeneNetwork`
GeneNetwork            genes, signed Hill edges, basal rates, decay (and Boolean rules)
TechnicalNoise         library size, dropout and counts settings
read_sergio, read_sergio_dataset, read_krumsiek11, read_boolode, read_bnet, read_collectri
                       readers of published networks
list_datasets, load_dataset, load_options, truth_edges, write_dataset, simulate_dataset, get_network
                       the registry of built-in datasets (simulated: myeloid, human-tf-atlas, sergio-ds1,
                       sergio-ds2; real: papalexi2021) and how each is loaded
"""

from perturbode_core.datasets.gene_network import GeneNetwork
from perturbode_core.datasets.network_readers import read_bnet, read_boolode, read_collectri, read_gt_grn, read_krumsiek11, read_sergio, read_sergio_dataset
from perturbode_core.datasets.registry import (demo_checkpoint_path, dataset_info, dataset_names, get_network,
                                               list_datasets, load_dataset, load_options, simulate_dataset,
                                               truth_edges, write_dataset)
from perturbode_core.datasets.screen_simulator import TechnicalNoise, simulate_screen

__all__ = [
    "demo_checkpoint_path",
    "GeneNetwork", "TechnicalNoise", "simulate_screen",
    "read_sergio", "read_sergio_dataset", "read_gt_grn", "read_krumsiek11", "read_boolode", "read_bnet",
    "read_collectri",
    "dataset_info", "dataset_names", "get_network", "list_datasets", "load_dataset", "load_options", "simulate_dataset", "truth_edges",
    "write_dataset",
]

"""Network page: the inferred gene regulatory network, its strongest edges, a gene's neighbourhood.

Answers "who regulates whom, and how sure is the model?": an interactive plotly network (edges
coloured by sign, width by |weight|, arrows for direction), a top-k or threshold cut, a gene's
regulators and targets read off the whole network (not the global cut), the strongest genes
named, a module-level view by default for large networks, genes coloured by module or by their
role in a known network, the sign-checked ground-truth overlay, the edge table, and CSV / GraphML
downloads (with the true / false-positive status when a known network is there).
"""

import numpy as np
import streamlit as st

from perturbode_core import plots
from perturbode_core.io import edges as edge_io
from perturbode_core.plots.style import sign_legend
from perturbode_core.tools import grn, modules as module_tools
from perturbode_core.tools.modules import dominant_module
from perturbode_core.tools.network_view import classify_edges, find_gene, focus_edges, with_unmeasured
from perturbode_ui import evaluation
from perturbode_ui.state import get_state
from perturbode_ui.widgets import require_model, user_errors

#: Above this many genes the page opens on the module-level view (a gene-level drawing is a hairball).
MODULE_VIEW_ABOVE = 150
#: The largest top-k the slider offers (a node-link drawing of more edges is unreadable).
MAX_TOP_K = 2000

state = get_state()
st.title("Gene regulatory network")
require_model(state)
model, data = state.model, state.data
genes = list(model.gene_names)


def network_matrices(alpha_mode: str, reading: str) -> tuple[np.ndarray, np.ndarray]:
    """(the scores that rank the edges, G) of the current model, computed once per model, mode
    and reading (kept in the session state)."""
    cache = state.network.matrices
    key = (state.model_key, alpha_mode, reading)
    if key not in cache:
        cells = data.control_cells() if alpha_mode == "jacobian" else None
        cache.clear()  # one model at a time: drop matrices of older models
        cache[key] = (grn.network_matrix(model, reading=reading, alpha_mode=alpha_mode, cells=cells),
                      grn.grn_matrix(model, alpha_mode=alpha_mode, cells=cells))
    return cache[key]


with st.sidebar:
    st.markdown("**Network options**")
    alpha_mode = st.radio("Module weights", ["plain", "jacobian"], horizontal=True, key="net_alpha",
                          help="plain: G = A·diag(α)·B. jacobian: α scaled by each module's mean slope on the "
                               "control cells (discounts saturated modules).")
    evidence = getattr(model, "response_evidence", None)
    reading = st.radio("Rank edges by", ["combined", "direct"], horizontal=True, key="net_reading",
                       disabled=evidence is None,
                       help="combined (the default): the rank of |G| plus the rank of the model's own simulated "
                            "response of the target to the regulator's training perturbations, weighted by how well "
                            "those responses match the measured ones; direct: |G| = |A·diag(α)·B| alone. The G "
                            "column of the table is the direct effect either way.")
    reading = grn.network_reading(model, reading)
    layout = st.selectbox("Layout", ["spring", "kamada_kawai", "circular"], key="net_layout")
    latent_names = list(getattr(model, "latent_names", []))
    per_latent = st.slider("Edges per unmeasured regulator", 0, 20, 5, key="net_latent_k",
                           help="Perturbed targets that are not among the measured genes enter the model as "
                                "regulators with learned inputs into the modules; drawn as open diamonds.") \
        if latent_names else 0

with user_errors("network"):
    S, G = network_matrices(alpha_mode, reading)
    n_possible = len(genes) * (len(genes) - 1)
    max_abs = float(np.abs(S[~np.eye(len(genes), dtype=bool)]).max()) if len(genes) > 1 else 0.0
    st.caption(grn.describe_reading(model, "combined" if evidence is None else reading))
    has_truth = state.truth is not None and len(state.truth) > 0

    search = st.text_input("Search a gene", key="net_search", placeholder="e.g. GATA1 (case does not matter)",
                           help="Focus on a gene: its strongest regulators and targets in the whole network.")
    found = find_gene(search, genes)
    if search.strip() and found is None:
        close = [g for g in genes if search.strip().casefold() in g.casefold()][:10]
        st.warning(f"No single gene matches {search.strip()!r}" + (f"; did you mean {', '.join(close)}?" if close else "."))
    large = len(genes) > MODULE_VIEW_ABOVE
    view = st.radio("View", ["genes", "modules"], horizontal=True, key=f"net_view_{large}", index=1 if large else 0,
                    disabled=found is not None,
                    help=f"modules: the model's modules and how they drive each other (the default above "
                         f"{MODULE_VIEW_ABOVE} genes); genes: gene-level edges. A searched gene is shown gene by gene.")
    if found is not None:
        view = "genes"  # a searched gene's neighbourhood is gene-level
    if view == "modules":
        w = module_tools.weights_from_model(model)
        members = module_tools.module_members(w.A, w.B, w.alpha, genes, method="top_n", top_n=10)
        n_mod = st.slider("Module links", 1, 200, min(40, max(1, model.n_modules ** 2)), key="net_mod_edges")
        graph = module_tools.module_network(w.A, w.B, w.alpha, genes, members=members, top_edges=n_mod)
        st.plotly_chart(plots.module_network_figure(graph), key="net_module_fig")
        st.caption(f"Module k → module l when k's targets are l's regulators ({sign_legend('activating', 'repressing')}). "
                   "Search a gene or switch to genes for gene-level edges"
                   + (" (and the unmeasured regulators)." if model.n_latent else "."))
        st.stop()

    c1, c2, c3 = st.columns([1.2, 1, 1])
    with c1:
        mode = st.radio("Keep edges by", ["top-k", "threshold"], horizontal=True, key="net_mode",
                        help="top-k: the k strongest edges by |weight|. threshold: every edge with |weight| ≥ t.")
        default_k = min(max(2 * len(genes), 10), max(1, n_possible), MAX_TOP_K)
        if mode == "top-k":
            # the slider's range always holds its default (2 x genes, capped for readability)
            top_k = st.slider("Top-k edges", 1, max(1, min(MAX_TOP_K, n_possible)), default_k, key="net_topk")
            edges = grn.ranked_edges(S, G, genes, top_k=top_k)
        else:
            thr = st.slider("|weight| threshold", 0.0, max(max_abs, 1e-6), round(max_abs / 3, 4),
                            step=max(max_abs / 100, 1e-6), format="%.4f", key="net_thr")
            edges = grn.ranked_edges(S, G, genes, threshold=thr)
    with c2:
        picked = st.selectbox("Focus on a gene", ["(whole network)"] + sorted(genes, key=str.casefold),
                              key="net_focus", help="Type to search. Shows the gene's regulators and/or targets.")
        focus = found or (None if picked == "(whole network)" else picked)
        hops = st.slider("Hops", 1, 3, 1, key="net_hops", disabled=focus is None)
        per_gene = st.slider("Edges per gene and side", 1, 50, 10, key="net_per_gene", disabled=focus is None,
                             help="A focused gene keeps its strongest regulators and targets from the whole network "
                                  "(not only those in the global top-k).")
        direction = st.radio("Direction", ["both", "upstream", "downstream"], horizontal=True, key="net_dir",
                             disabled=focus is None, help="upstream: regulators of the gene; downstream: its targets.")
    with c3:
        colour_opts = ["module", "none"] + (["ground truth"] if has_truth else [])
        colour = st.radio("Colour genes by", colour_opts, key="net_colour",
                          help="module: the module that drives the gene most strongly (the 10 largest modules get a "
                               "colour). ground truth: edges drawn as true positive / wrong sign / false positive / "
                               "missed.")
        n_labels = st.slider("Gene names shown", 0, max(1, len(genes)), min(40, len(genes)), key="net_labels",
                             help="The genes with the strongest edges are named; hover any gene for its name.")
        if not has_truth:
            st.caption("No known network for these data (upload one on the Evaluate page for the overlay).")

    if per_latent and not focus:  # unmeasured regulators and their strongest learned edges, "not measured"
        cells = data.control_cells() if alpha_mode == "jacobian" else None
        edges = with_unmeasured(edges, grn.latent_edges(model, alpha_mode=alpha_mode, cells=cells),
                                per_regulator=per_latent)
    shown = focus_edges(S, genes, focus, hops=hops, direction=direction, per_gene=per_gene) if focus else edges
    w = model.module_weights()
    modules = dominant_module(w["A"], w["alpha"], genes)
    fig = plots.network_figure(
        shown, genes=[focus] if focus else None,
        node_groups=modules if colour == "module" else None,
        truth=state.truth if colour == "ground truth" else None,
        focus=focus, layout=layout, title=None, labels=int(n_labels), unmeasured=latent_names)

    if latent_names and per_latent and not focus:
        st.caption(f"Not measured (open diamonds): {', '.join(latent_names)}: perturbed in the screen but not among "
                   "the genes; their edges are their learned inputs into the modules read through the modules' "
                   "targets.")
    m1, m2, m3 = st.columns(3)
    m1.metric("Edges shown", len(shown))
    m2.metric("Genes shown", fig.layout.meta["n_genes"] if fig.layout.meta else 0)
    m3.metric("Activating share", f"{(shown['sign'] > 0).mean():.0%}" if len(shown) else "–")
    if focus and len(shown) == 0:
        st.info(f"{focus} has no edge in the model's network.")
    st.plotly_chart(fig, key="net_fig")
    st.caption("Edges: " + (sign_legend() if colour != "ground truth" else
                            "green true positive, purple wrong sign (a known edge with the opposite sign), "
                            "orange false positive, grey missed") + "; wider is stronger.")

    st.subheader("Edges")
    # the seed runs of the Evaluate page (if any): each edge's share of runs that keep it
    shown, n_runs = evaluation.with_seed_confidence(shown, state.evaluation.stability)
    if n_runs:
        st.caption(f"confidence: the share of the {n_runs} seed runs (Evaluate → Stability over seeds) that keep "
                   "the edge among their strongest; also in the CSV and GraphML downloads.")
    table = shown.assign(module_of_target=shown["target"].map(modules))
    if has_truth:
        # the export says, edge by edge, whether the known network has it and with which sign
        cls = classify_edges(shown, state.truth)
        table = table.assign(known_status=cls["status"].iloc[:len(shown)].to_numpy(),
                             known_sign=cls["true_sign"].iloc[:len(shown)].to_numpy())
    st.dataframe(table, hide_index=True,
                 column_config={"weight": st.column_config.NumberColumn(format="%.4f"),
                                "G": st.column_config.NumberColumn(format="%.4f"),
                                "confidence": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0,
                                                                              format="%.2f")})
    stem = f"{state.dataset_name or 'network'}_grn".replace(" ", "_")
    d1, d2 = st.columns(2)
    d1.download_button("Download edges (CSV)", table.to_csv(index=False).encode("utf-8"), f"{stem}.csv",
                       "text/csv", key="net_dl_csv", on_click="ignore", icon=":material/download:")
    d2.download_button("Download GraphML (Cytoscape, Gephi)",
                       edge_io.graphml_bytes(shown, node_attributes={"module": modules}), f"{stem}.graphml",
                       "application/graphml+xml", key="net_dl_graphml", on_click="ignore", icon=":material/download:")
    # the Report page reuses what is on screen here
    state.network.edges, state.network.figure = shown, fig
    state.network.alpha_mode, state.network.focus, state.network.reading = alpha_mode, focus, reading

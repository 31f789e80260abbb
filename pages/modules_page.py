"""Modules & enrichment page: the model's hidden units as gene programmes.

Answers "which genes act together, and what do they do?": each module's regulators (the genes it
reads) and targets (the genes it drives), the module -> module network, and over-representation
of gene sets (shipped libraries or an uploaded GMT) in each module, as a dot plot and a table.
"""

from pathlib import Path

import numpy as np
import streamlit as st

from perturbode_core import plots
from perturbode_core.tools import enrichment, modules
from perturbode_ui.state import get_state
from perturbode_ui.widgets import require_model, user_errors

#: A module weaker than this share of the strongest is dead (it reads from or writes to nothing).
DEAD_STRENGTH = 1e-6

state = get_state()
st.title("Modules & enrichment")

require_model(state)
model = state.model
genes = list(model.gene_names)
w = modules.weights_from_model(model)

with st.sidebar:
    st.markdown("**Module membership**")
    method = st.radio("Members by", ["top_n", "share"], horizontal=True, key="mod_method",
                      format_func={"top_n": "top n", "share": "weight share"}.get,
                      help="top n: the n genes with the largest |weight| per module and side. weight share: "
                           "the fewest genes holding this share of the module's total |weight|.")
    if method == "top_n":
        top_n = st.slider("Genes per module and side", 1, min(200, len(genes)), min(10, len(genes)), key="mod_topn")
        share = 0.5
    else:
        share = st.slider("Share of |weight|", 0.1, 0.95, 0.5, 0.05, key="mod_share")
        top_n = 20

with user_errors("modules"):
    members = modules.module_members(w.A, w.B, w.alpha, genes, method=method, top_n=top_n, share=share)
    summary = modules.module_summary(w.A, w.B, w.alpha, genes, n_genes=5)
    # a module of strength 0 reads from or writes to nothing (L1 switched it off): not a programme
    dead = summary["strength"] <= DEAD_STRENGTH * max(float(summary["strength"].max()), 1e-12)
    show_dead = st.toggle(f"Show the {int(dead.sum())} dead modules (strength 0)", value=False, key="mod_show_dead",
                          disabled=not dead.any())
    summary = summary.assign(status=np.where(dead, "dead (strength 0)", "active"))
    if not show_dead:
        summary = summary[~dead].reset_index(drop=True)
    state.modules.summary, state.modules.members = summary, members[members["module"].isin(summary["module"])]

    if summary.empty:
        st.warning("Every module of this model is dead (strength 0): the L1 penalty switched the network off. "
                   "Train with a smaller L1 weight.")
        st.stop()
    st.subheader("Modules")
    st.caption("Strongest first. A gene with suffix + is activated by (target) or activates (regulator) the module; "
               "− represses. Strength combines the module's regulator and target weights"
               + (f"; {int(dead.sum())} dead modules (strength 0: they read from or write to nothing) are hidden."
                  if dead.any() and not show_dead else "."))
    st.dataframe(summary, hide_index=True, column_config={
        "strength": st.column_config.NumberColumn(format="%.3f"), "alpha": st.column_config.NumberColumn(format="%.3f")})

    left, right = st.columns([1, 1.4])
    with left:
        k = st.selectbox("Module", summary["module"].tolist(), key="mod_pick",
                         format_func=lambda m: f"{modules.module_label(m)} (rank {int(summary.set_index('module').loc[m, 'strength_rank'])})")
        mine = members[members["module"] == k]
        for role, label in (("regulator", "Regulators (inputs)"), ("target", "Targets (outputs)")):
            st.markdown(f"**{label}**")
            st.dataframe(mine[mine["role"] == role][["gene", "weight", "rank"]], hide_index=True,
                         column_config={"weight": st.column_config.NumberColumn(format="%+.3f")})
    with right:
        n_edges = st.slider("Module-network edges", 1, 200, min(30, max(1, len(summary) ** 2)), key="mod_edges")
        graph = modules.module_network(w.A, w.B, w.alpha, genes, members=members, top_edges=n_edges)
        fig_net = plots.module_network_figure(graph)
        st.plotly_chart(fig_net, key="mod_net_fig")
        st.caption("Module k → module l when k's targets are l's regulators; blue activating, vermillion repressing; "
                   "hover an arrow for the shared genes.")
    state.modules.network_figure = fig_net

    d1, d2 = st.columns(2)
    d1.download_button("Download membership (CSV)", members.to_csv(index=False).encode("utf-8"), "module_members.csv",
                       "text/csv", key="mod_dl_members", on_click="ignore", icon=":material/download:")
    d2.download_button("Download module summary (CSV)", summary.to_csv(index=False).encode("utf-8"),
                       "module_summary.csv", "text/csv", key="mod_dl_summary", on_click="ignore",
                       icon=":material/download:")

st.divider()
st.subheader("Enrichment")
libs = enrichment.available_libraries()
auto_name, auto_reason = enrichment.default_library(genes)
with st.form("enrich_form"):
    c1, c2, c3 = st.columns([1.4, 1, 1])
    names = [auto_name] + [n for n in libs["name"] if n != auto_name]  # the data's species first
    choice = c1.selectbox("Gene-set library", names + ["upload a GMT file"], key="enr_lib",
                          format_func=lambda n: n if n not in set(libs["name"]) else
                          f"{n} ({libs.set_index('name').loc[n, 'species']})",
                          help=f"Default: {auto_reason}.")
    gmt = c1.file_uploader("GMT file (used when 'upload a GMT file' is chosen)", type=["gmt", "gz", "txt"],
                           key="enr_gmt")
    role = c2.radio("Module genes", ["target", "regulator", "both"], key="enr_role",
                    help="target: the genes a module drives (a co-regulated programme).")
    # small models have few genes, so sets shrink when restricted to them: relax the size floor
    min_size = c3.number_input("Min set size (within the model's genes)", 1, 500, 5 if len(genes) >= 200 else 2,
                               key="enr_min")
    max_q = c3.number_input("Show q ≤", 0.0, 1.0, 0.25, 0.05, key="enr_q")
    run = st.form_submit_button("Run enrichment", type="primary")

if run:
    with user_errors("enrichment"):
        if choice == "upload a GMT file":
            if gmt is None:
                st.error("Choose a GMT file to upload first (one set per line: name, description, genes, tab-separated).")
                st.stop()
            path = state.workdir / f"upload_{Path(gmt.name).name}"  # never a path from the client
            path.write_bytes(gmt.getvalue())
            library = enrichment.read_gmt(path, name=gmt.name)
        else:
            library = choice
        with st.spinner("Testing every module against every gene set…"):
            result = enrichment.enrich_modules(model, library, role=role, method=method, top_n=top_n, share=share,
                                               min_size=int(min_size))
        state.modules.enrichment = result
        state.modules.library = getattr(library, "name", library)
        m = result.attrs.get("match")
        state.modules.match = "" if m is None else (
            f"{m.n_matched} of {m.n_genes} model genes are in the library"
            + (f" (not found: {', '.join(m.unmatched_examples)})." if m.unmatched_examples else "."))

result = state.modules.enrichment
if result is None:
    st.caption("Choose a library and press Run enrichment.")
else:
    with user_errors("enrichment display"):
        shown = result[result["qvalue"] <= max_q].copy()
        shown.attrs = {}  # the match report in attrs is not JSON: keep it out of the Arrow table
        st.caption(f"Library **{state.modules.library}** · {result.attrs.get('n_sets_tested', '?')} sets tested · "
                   f"{len(shown)} module–set pairs with q ≤ {max_q:g}. {state.modules.match}")
        empty = enrichment.empty_result_message(result, max_q)
        if empty:
            st.info(empty)  # in words, not an empty plot
        else:
            fig_dot = plots.enrichment_dotplot(result, n_terms=3, max_q=max_q)
            st.plotly_chart(fig_dot, key="enr_dot")
            state.modules.dotplot = fig_dot
            st.dataframe(shown.drop(columns=["library"], errors="ignore"), hide_index=True,
                         column_config={"pvalue": st.column_config.NumberColumn(format="%.2e"),
                                        "qvalue": st.column_config.NumberColumn(format="%.2e"),
                                        "odds_ratio": st.column_config.NumberColumn(format="%.2f"),
                                        "neg_log10_q": st.column_config.NumberColumn(format="%.2f")})
        st.download_button("Download enrichment (CSV)", result.to_csv(index=False).encode("utf-8"),
                           "module_enrichment.csv", "text/csv", key="enr_dl", on_click="ignore",
                           icon=":material/download:")

"""Literature support of an inferred network where no ground truth exists (real screens).

Inferred edges are checked against published TF -> target networks (CollecTRI, TRRUST; shipped in
``tools/reference_networks``, see its PROVENANCE.md) restricted to the genes present: the measured
genes and the model's unmeasured regulators. Only edges whose source is a TF of the restricted
reference are scored (the reference says nothing about the others), and direction counts (sign is
reported apart).

The random expectation keeps the degrees: the top ``k`` scored edges' targets are shuffled among
their sources (each source keeps its number of edges, each target its number of incoming ones),
``n_permutations`` times, and each shuffle is scored the same way. This asks "are the right targets
attached to each TF?", not merely "were hub TFs picked?": a model that only learned which TFs have
many targets scores at the random level. ``p_value`` = (1 + shuffles at least as precise) /
(1 + shuffles).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from perturbode_core.errors import PerturbODEError, check_choice
from perturbode_core.io.edges import as_edge_frame

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference_networks"
#: Shipped reference networks (human symbols): name -> file.
REFERENCES = {"collectri": "collectri_human.csv.gz", "trrust": "trrust_v2_human.csv.gz"}
#: Columns of :func:`literature_support`.
SUPPORT_COLUMNS = ["reference", "top_k", "scored", "supported", "precision", "random_precision",
                   "random_sd", "fold", "p_value", "sign_agreement", "reference_edges", "tfs"]


@functools.lru_cache(maxsize=4)
def _read(name: str) -> pd.DataFrame:
    df = pd.read_csv(REFERENCE_DIR / REFERENCES[name])
    # one row per pair: a pair listed as both activating and repressing gets sign 0
    signs = df.groupby(["source", "target"], sort=False)["sign"].agg(lambda s: int(s.iloc[0]) if s.nunique() == 1 else 0)
    return signs.reset_index()


def load_reference(name: str, genes=None) -> pd.DataFrame:
    """A shipped reference network as ``source, target, sign`` (one row per pair, no self-loops),
    restricted to edges whose both ends are in ``genes`` (matched case-insensitively; the
    names returned are the ones in ``genes``) when given."""
    check_choice("reference", name, tuple(REFERENCES))
    ref = _read(name)
    ref = ref[ref["source"] != ref["target"]]
    if genes is None:
        return ref.reset_index(drop=True)
    spelled = {str(g).casefold(): str(g) for g in genes}
    src, tgt = ref["source"].str.casefold().map(spelled), ref["target"].str.casefold().map(spelled)
    keep = src.notna() & tgt.notna()
    return pd.DataFrame({"source": src[keep], "target": tgt[keep], "sign": ref["sign"][keep]}).reset_index(drop=True)


def literature_support(edges, genes, *, references=("collectri", "trrust"), top_k=(25, 50, 100),
                       n_permutations: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Precision of the top inferred edges against reference networks, beside its random expectation.

    Parameters
    ----------
    edges
        Inferred edges (``source, target, weight``; e.g. the model's network plus its unmeasured
        regulators' edges), any order: they are ranked by ``|weight|``.
    genes
        The genes present (measured genes and unmeasured regulators): the reference is restricted
        to them.
    references
        Names in :data:`REFERENCES`.
    top_k
        Cut-offs: the ``k`` strongest scored edges (fewer when fewer exist).
    n_permutations
        Degree-preserving shuffles for the random expectation.
    seed
        Seed of the shuffles.

    Returns
    -------
    pandas.DataFrame
        One row per reference and cut-off (:data:`SUPPORT_COLUMNS`): ``scored`` (edges scored:
        the top ``k`` whose source is a reference TF), ``supported`` (of them, in the reference),
        ``precision``, ``random_precision`` and ``random_sd`` (over the shuffles), ``fold``
        (precision / random), ``p_value``, ``sign_agreement`` (share of supported edges whose sign
        matches a signed reference edge; NaN when none is signed), ``reference_edges`` and ``tfs``
        (size of the restricted reference). ``attrs["empty"]`` names the references with no edge
        among the genes.
    """
    if n_permutations < 1:
        raise PerturbODEError("n_permutations must be at least 1", where="literature_support",
                              fix="Give e.g. 1000")
    pred = as_edge_frame(edges)
    pred = pred[pred["source"] != pred["target"]]
    pred = pred.iloc[np.argsort(-np.abs(pred["weight"].to_numpy()), kind="stable")]
    rows, empty = [], []
    rng = np.random.default_rng(seed)
    for name in references:
        ref = load_reference(name, genes)
        if ref.empty:
            empty.append(name)
            continue
        tfs = set(ref["source"])
        scored = pred[pred["source"].isin(tfs)]
        signs = dict(zip(zip(ref["source"], ref["target"]), ref["sign"]))
        for k in sorted({int(k) for k in top_k}):
            top = scored.head(k)
            rows.append({"reference": name, "top_k": k, **_score(top, signs, rng, n_permutations),
                         "reference_edges": len(ref), "tfs": len(tfs)})
    out = pd.DataFrame(rows, columns=SUPPORT_COLUMNS)
    out.attrs["empty"] = empty
    return out


def _score(top: pd.DataFrame, signs: dict, rng, n_permutations: int) -> dict:
    n = len(top)
    if n == 0:
        return {"scored": 0, "supported": 0, "precision": np.nan, "random_precision": np.nan, "random_sd": np.nan,
                "fold": np.nan, "p_value": np.nan, "sign_agreement": np.nan}
    src, tgt = top["source"].to_numpy(dtype=object), top["target"].to_numpy(dtype=object)
    hits = np.fromiter(((s, t) in signs for s, t in zip(src, tgt)), bool, count=n)
    # shuffled targets, scored through integer pair codes (vectorised membership)
    names = pd.Index(pd.unique(np.concatenate([src, tgt])))
    s_code, t_code = names.get_indexer(src), names.get_indexer(tgt)
    ref_codes = np.asarray([names.get_loc(s) * len(names) + names.get_loc(t) for s, t in signs
                            if s in names and t in names], dtype=np.int64)
    shuffled = rng.permuted(np.tile(t_code, (n_permutations, 1)), axis=1)
    null_hits = np.isin(s_code[None, :] * len(names) + shuffled, ref_codes).sum(1) / n
    precision = float(hits.mean())
    random = float(null_hits.mean())
    signed = [(np.sign(w), signs[(s, t)]) for s, t, w, h in zip(src, tgt, top["weight"], hits) if h and signs[(s, t)] != 0]
    return {"scored": n, "supported": int(hits.sum()), "precision": precision, "random_precision": random,
            "random_sd": float(null_hits.std()), "fold": precision / random if random > 0 else np.nan,
            "p_value": float((1 + (null_hits >= precision - 1e-12).sum()) / (1 + n_permutations)),
            "sign_agreement": float(np.mean([a == b for a, b in signed])) if signed else np.nan}

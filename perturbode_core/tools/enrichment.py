"""Gene-set libraries (GMT) and over-representation analysis of gene modules.

Shipped libraries (see ``genesets/PROVENANCE.md`` for sources and licences)::

    go_bp            GO Biological Process 2021, human (Enrichr build)
    hallmark         MSigDB Hallmark v7.0, human
    mouse_go_bp      GO Biological Process (GO2MSIG 2015), mouse
    yeast_goslim_bp  SGD GO-slim Biological Process 2015, yeast ORF ids

Any GMT file works too: one set per line, ``name<TAB>description<TAB>gene<TAB>gene...``
(plain or gzip-compressed).

The test: for module ``m`` (its genes) and set ``s``, with the model's genes as the background
``N`` (never the whole genome: each set is first restricted to the background), the one-sided
hypergeometric p-value ``P(X >= overlap)``, ``X ~ Hypergeom(N, |s ∩ background|, |m|)``; then
Benjamini–Hochberg across all (module, set) tests that passed the size filters. Gene names are
matched case-insensitively (``Gata1`` = ``GATA1``) and through known aliases (``Pu.1`` = ``SPI1``,
:mod:`perturbode_core.tools.gene_names`). The library ``"auto"`` is the shipped one of the genes'
species (:data:`SPECIES_LIBRARY`, species guessed from how the names are written).
"""

from __future__ import annotations

import functools
import gzip
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Hashable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import hypergeom

from perturbode_core.io.files import check_input_file
from perturbode_core.tools.fdr import benjamini_hochberg
from perturbode_core.errors import PerturbODEError, PerturbODEWarning, check_choice

__all__ = [
    "LIBRARIES",
    "GENESET_DIR",
    "GeneSetLibrary",
    "GeneMatch",
    "available_libraries",
    "load_library",
    "read_gmt",
    "match_genes",
    "benjamini_hochberg",
    "over_representation",
    "enrich_modules",
    "top_terms",
    "default_library",
    "empty_result_message",
    "SPECIES_LIBRARY",
    "RESULT_COLUMNS",
]

GENESET_DIR = Path(__file__).resolve().parent / "genesets"


@dataclass(frozen=True)
class LibraryInfo:
    """A shipped gene-set library: its file under ``genesets/`` and what it is."""

    file: str
    description: str
    species: str
    identifiers: str
    licence: str


LIBRARIES: dict[str, LibraryInfo] = {
    "go_bp": LibraryInfo("go_bp_2021_human.gmt.gz",
                         "GO Biological Process 2021 (Enrichr build): 6,036 sets, 14,937 genes",
                         "human", "gene symbols", "CC BY 4.0"),
    "hallmark": LibraryInfo("hallmark_v7.0_human.gmt", "MSigDB Hallmark v7.0: 50 sets, 4,384 genes",
                            "human", "gene symbols", "CC BY 4.0"),
    "mouse_go_bp": LibraryInfo("mouse_go_bp_2015.gmt.gz",
                               "GO Biological Process (GO2MSIG, April 2015): 3,469 sets",
                               "mouse", "gene symbols (upper case; matched case-insensitively)", "CC BY 4.0"),
    "yeast_goslim_bp": LibraryInfo("yeast_goslim_bp_2015.gmt.gz",
                                   "SGD GO-slim Biological Process 2015: 100 sets over 4,911 genes",
                                   "yeast", "systematic ORF ids (YAL027W)", "CC BY 4.0"),
}

#: The default library of each species (library ``"auto"``).
SPECIES_LIBRARY = {"human": "go_bp", "mouse": "mouse_go_bp", "yeast": "yeast_goslim_bp"}

RESULT_COLUMNS = ["module", "term", "library", "overlap", "set_size", "module_size", "background",
                  "odds_ratio", "pvalue", "qvalue", "neg_log10_q", "genes"]


def available_libraries() -> pd.DataFrame:
    """The shipped libraries as a table (name, species, identifiers, description, licence)."""
    return pd.DataFrame([{"name": k, "species": v.species, "identifiers": v.identifiers,
                          "description": v.description, "licence": v.licence} for k, v in LIBRARIES.items()])


# ---------------------------------------------------------------------------------------- libraries
@dataclass(frozen=True, eq=False)
class GeneSetLibrary:
    """A parsed gene-set library.

    Attributes
    ----------
    name
        Registry name or file stem.
    source
        Where it was read from.
    terms
        Set names, in file order.
    descriptions
        One per term (often a URL or empty).
    genes
        One tuple of gene names per term (as written, duplicates removed).
    vocabulary
        Distinct case-folded gene names across all sets.
    membership
        Sparse CSR (n_terms x n_vocabulary) 0/1 matrix: which genes each set holds.
    """

    name: str
    source: str
    terms: tuple
    descriptions: tuple
    genes: tuple
    vocabulary: np.ndarray
    membership: sp.csr_matrix

    def __len__(self) -> int:
        return len(self.terms)

    def __repr__(self) -> str:
        return f"GeneSetLibrary({self.name!r}, {len(self.terms)} sets, {len(self.vocabulary)} genes)"

    def to_dict(self) -> dict[str, list[str]]:
        """``{term: [genes]}``."""
        return {t: list(g) for t, g in zip(self.terms, self.genes)}

    @classmethod
    def from_dict(cls, sets: Mapping[str, Iterable[str]], *, name: str = "custom",
                  descriptions: Mapping[str, str] | None = None) -> "GeneSetLibrary":
        """A library from ``{term: genes}`` (e.g. hand-made sets)."""
        terms = [str(t) for t in sets]
        genes = [tuple(dict.fromkeys(str(g).strip() for g in sets[t] if str(g).strip())) for t in sets]
        for t, g in zip(terms, genes):
            if not g:
                raise PerturbODEError(f"Gene set {t!r} has no genes", where=f"library {name!r}",
                                      fix="Remove the empty set")
        desc = [str((descriptions or {}).get(t, "")) for t in terms]
        return _build_library(name, "(in memory)", terms, desc, genes)


def _build_library(name, source, terms, descriptions, genes) -> GeneSetLibrary:
    lengths = np.fromiter((len(g) for g in genes), dtype=np.int64, count=len(genes))
    flat = [x.casefold() for g in genes for x in g]
    codes, vocab = pd.factorize(pd.Index(flat, dtype=object), sort=False)
    rows = np.repeat(np.arange(len(genes)), lengths)
    M = sp.csr_matrix((np.ones(len(flat), dtype=np.int32), (rows, codes)), shape=(len(genes), len(vocab)))
    M.sum_duplicates()
    M.data[:] = 1  # "Gata1" and "GATA1" in one set count once
    return GeneSetLibrary(name=name, source=str(source), terms=tuple(terms), descriptions=tuple(descriptions),
                          genes=tuple(genes), vocabulary=np.asarray(vocab, dtype=object), membership=M)


def read_gmt(path: str | os.PathLike, *, name: str | None = None) -> GeneSetLibrary:
    """Read a GMT file (plain or gzip-compressed).

    Each non-empty line is ``name<TAB>description<TAB>gene<TAB>gene...``. Empty gene fields (trailing
    tabs) are ignored, Enrichr-style ``GENE,1.0`` weights are dropped, genes repeated within a set
    count once, and lines starting with ``#`` are comments. A set name that appears twice with the
    same genes is kept once; with different genes it is an error (the two lines are named), since
    silently merging or dropping either would change the test.

    Raises
    ------
    PerturbODEError
        Missing file, non-UTF-8 text, a line with fewer than 3 tab-separated fields, an empty set
        name or gene list, conflicting duplicate set names, or no sets at all; the message names
        the file and the line number.
    """
    path = check_input_file(path, kind="Gene-set file", where=f"option 'library' ({path})",
                            fix=f"Give a .gmt file or one of the shipped libraries: {', '.join(LIBRARIES)}")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise PerturbODEError(f"{path.name} looks gzip-compressed but cannot be decompressed ({exc})",
                                  where=str(path), fix="Re-download or re-compress the file") from exc
    try:
        text = raw.decode("utf-8-sig")  # tolerate a byte-order mark
    except UnicodeDecodeError as exc:
        line_no = raw[: exc.start].count(b"\n") + 1
        raise PerturbODEError(f"{path.name} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line_no}); "
                              "a GMT file must be plain UTF-8 text",
                              where=f"{path}, line {line_no}",
                              fix="Save it as UTF-8 (e.g. iconv -f latin1 -t utf-8), or check it is really a GMT file"
                              ) from None
    terms: list[str] = []
    descriptions: list[str] = []
    genes: list[tuple] = []
    seen: dict[str, int] = {}  # term -> line number
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.rstrip("\r\n").split("\t")
        where = f"{path}, line {line_no}"
        if len(fields) < 3:
            raise PerturbODEError(f"Line {line_no} of {path.name} has {len(fields)} tab-separated field(s); a GMT "
                                  "line needs name, description and at least one gene",
                                  where=where, fix="Separate the fields with tabs (not spaces) or remove the line")
        term = fields[0].strip()
        if not term:
            raise PerturbODEError(f"Line {line_no} of {path.name} has an empty set name", where=where,
                                  fix="Give the set a name in the first field")
        members = tuple(dict.fromkeys(g.split(",", 1)[0].strip() for g in fields[2:] if g.strip()))
        members = tuple(g for g in members if g)
        if not members:
            raise PerturbODEError(f"Gene set {term!r} on line {line_no} of {path.name} has no genes", where=where,
                                  fix="Add its genes after the description field or remove the line")
        if term in seen:
            i = terms.index(term)
            if {g.casefold() for g in genes[i]} == {g.casefold() for g in members}:
                continue
            raise PerturbODEError(f"Gene set {term!r} appears twice in {path.name} with different genes "
                                  f"(lines {seen[term]} and {line_no})", where=where,
                                  fix="Rename one of the two sets, or merge them into one line")
        seen[term] = line_no
        terms.append(term)
        descriptions.append(fields[1].strip())
        genes.append(members)
    if not terms:
        raise PerturbODEError(f"{path.name} holds no gene sets", where=str(path),
                              fix="Give a GMT file: one set per line, name<TAB>description<TAB>genes...")
    stem = path.name
    for suffix in (".gz", ".gmt", ".txt"):
        stem = stem[: -len(suffix)] if stem.lower().endswith(suffix) else stem
    return _build_library(name or stem, path, terms, descriptions, genes)


@functools.lru_cache(maxsize=8)
def _load_shipped(name: str) -> GeneSetLibrary:
    return read_gmt(GENESET_DIR / LIBRARIES[name].file, name=name)


def default_library(genes: Sequence[str]) -> tuple[str, str]:
    """The shipped library for the species of ``genes`` and why: ``(name, reason)``."""
    from perturbode_core.tools.gene_names import detect_species

    guess = detect_species(genes)
    name = SPECIES_LIBRARY[guess.species]
    return name, f"{name} ({guess.species}: {guess.reason})"


def load_library(name_or_path: str | os.PathLike | GeneSetLibrary, genes: Sequence[str] | None = None) -> GeneSetLibrary:
    """A shipped library by name (``go_bp``, ``hallmark``, ``mouse_go_bp``, ``yeast_goslim_bp``), a GMT
    file, or ``"auto"``: the library of the species of ``genes`` (:func:`default_library`).

    Shipped libraries are parsed once per process and cached (the object is read-only).
    """
    if isinstance(name_or_path, GeneSetLibrary):
        return name_or_path
    key = str(name_or_path)
    if key == "auto":
        if genes is None:
            raise PerturbODEError("The library 'auto' needs the genes to guess their species", where="option 'library'",
                                  fix=f"Pass the genes, or name a library: {', '.join(LIBRARIES)}")
        key = default_library(genes)[0]
    if key in LIBRARIES:
        return _load_shipped(key)
    if not Path(key).exists() and os.sep not in key and "." not in key:
        raise PerturbODEError(f"Unknown gene-set library {key!r}", where="option 'library'",
                              fix=f"Use one of: auto, {', '.join(LIBRARIES)}, or the path of a .gmt file")
    return read_gmt(key)


# ---------------------------------------------------------------------------------------- matching
@dataclass(frozen=True)
class GeneMatch:
    """How the model's genes match a library (case-insensitive).

    Attributes
    ----------
    library
        Library name.
    n_genes
        Genes in the background (the model's genes).
    n_matched
        Background genes found in at least one set of the library.
    n_sets
        Sets in the library.
    n_sets_with_any
        Sets holding at least one background gene.
    unmatched_examples
        Up to 10 background genes found in no set.
    """

    library: str
    n_genes: int
    n_matched: int
    n_sets: int
    n_sets_with_any: int
    unmatched_examples: tuple

    @property
    def fraction(self) -> float:
        """Share of the genes found in at least one gene set (0 when there are no genes)."""
        return self.n_matched / self.n_genes if self.n_genes else 0.0

    def summary(self) -> str:
        """A one-sentence summary of how well the genes match the library (for messages)."""
        text = (f"{self.n_matched} of {self.n_genes} genes ({100 * self.fraction:.0f}%) are in at least one of "
                f"{self.n_sets} sets of {self.library}; {self.n_sets_with_any} sets hold at least one of them")
        if self.unmatched_examples and self.n_matched < self.n_genes:
            text += f" (unmatched e.g. {', '.join(self.unmatched_examples[:5])})"
        return text


def _background_index(background: Sequence[str]) -> tuple[list[str], dict[str, int]]:
    """The genes and ``{case-folded name: position}``, with each known alias's official symbol
    pointing at the alias (``Pu.1`` is found as ``SPI1``) unless that symbol is itself a gene."""
    from perturbode_core.tools.gene_names import official_symbol

    genes = [str(g) for g in background]
    index: dict[str, int] = {}
    for i, g in enumerate(genes):
        index.setdefault(g.casefold(), i)  # first spelling wins if two differ only by case
    for i, g in enumerate(genes):  # second pass: a real gene always wins over an alias
        symbol = official_symbol(g)
        if symbol is not None:
            index.setdefault(symbol.casefold(), i)
    return genes, index


def _restrict(library: GeneSetLibrary, background: Sequence[str]):
    """Membership restricted to the background: CSR (n_terms x n_background) 0/1, plus the match report."""
    genes, index = _background_index(background)
    # vectorised lookup of every library gene in the background (-1: not a model gene)
    lookup = pd.Series(index, dtype="int64") if index else pd.Series(dtype="int64")
    col = lookup.reindex(library.vocabulary).fillna(-1).to_numpy(np.int64)
    Mc = library.membership.tocoo()
    keep = col[Mc.col] >= 0
    S = sp.csr_matrix((np.ones(int(keep.sum()), np.int32), (Mc.row[keep], col[Mc.col[keep]])),
                      shape=(len(library.terms), len(genes)))
    S.sum_duplicates()
    S.data[:] = 1
    in_any = np.zeros(len(genes), bool)
    in_any[np.unique(S.indices)] = True
    unmatched = tuple(np.asarray(genes, dtype=object)[~in_any][:10])
    report = GeneMatch(library=library.name, n_genes=len(genes), n_matched=int(in_any.sum()),
                       n_sets=len(library.terms), n_sets_with_any=int((np.diff(S.indptr) > 0).sum()),
                       unmatched_examples=unmatched)
    return S, report, genes, index


def match_genes(genes: Sequence[str], library) -> GeneMatch:
    """Report how many of ``genes`` (e.g. the model's genes) are in the library, case-insensitively
    and through known aliases."""
    return _restrict(load_library(library, genes=genes), genes)[1]


def _hypergeom_sf(k, N, n_set, n_draw) -> np.ndarray:
    """P(X >= k) for X ~ Hypergeom(N, n_set, n_draw), vectorised.

    Only distinct (k, n_set, n_draw) triples are evaluated: overlaps are small integers and there
    are few distinct set and module sizes, so this is orders of magnitude fewer calls into scipy's
    (exact but ~8 µs per value) survival function than there are tests.
    """
    k, n_set, n_draw = (np.asarray(a, dtype=np.int64) for a in (k, n_set, n_draw))
    if k.size == 0:
        return np.zeros(0)
    # pack the triple into one int64 (each part <= N) so np.unique sorts a flat array
    base = np.int64(N + 1)
    key = (k * base + n_set) * base + n_draw
    uniq, inverse = np.unique(key, return_inverse=True)
    uk, rest = np.divmod(uniq, base * base)
    un, ud = np.divmod(rest, base)
    p = hypergeom.sf(uk - 1, N, un, ud)
    return np.clip(p[inverse.reshape(-1)], 0.0, 1.0)


def _sparse_overlaps(S: sp.csr_matrix, G: sp.spmatrix):
    """Non-zero entries of ``S @ G`` (0/1 matrices: sets x genes, genes x modules), with their genes.

    Every term ``S[s, g] G[g, m]`` of the product is one (set, gene, module) triple; for gene g
    there are deg_S(g) x deg_G(g) of them, generated with ``np.repeat`` arithmetic (no loop over
    genes or sets). A stable sort by the (set, module) key groups the triples into the product's
    non-zeros while keeping the genes of each group in background order. The work is the sum of
    all overlaps, the same as the sparse product itself.

    Returns
    -------
    rows, cols, counts, seg_ptr, seg_genes
        Non-zero pairs (set row, module column, overlap), and for pair i its genes
        ``seg_genes[seg_ptr[i]:seg_ptr[i] + counts[i]]``.
    """
    Sc = S.tocsc()  # gene -> its sets
    Gr = sp.csr_matrix(G)  # gene -> its modules
    n_genes = S.shape[1]
    n_cols = G.shape[1]
    a = np.diff(Sc.indptr).astype(np.int64)
    b = np.diff(Gr.indptr).astype(np.int64)
    c = a * b
    total = int(c.sum())
    if total == 0:
        z = np.zeros(0, np.int64)
        return z, z, z, z, z
    g = np.repeat(np.arange(n_genes, dtype=np.int64), c)
    j = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(c) - c, c)  # index within gene g's block
    bg = b[g]
    s = Sc.indices[Sc.indptr[g] + j // bg].astype(np.int64)
    m = Gr.indices[Gr.indptr[g] + j % bg].astype(np.int64)
    del j, bg
    key = s * n_cols + m
    order = np.argsort(key, kind="stable")  # g is already ascending, so stable keeps genes in order
    key = key[order]
    seg_genes = g[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    counts = np.diff(np.r_[starts, total])
    uk = key[starts]
    return uk // n_cols, uk % n_cols, counts, starts.astype(np.int64), seg_genes


def _join_rows(names: np.ndarray, indices: np.ndarray, indptr: np.ndarray, sep: str = ";") -> np.ndarray:
    """``sep``-joined ``names[indices[indptr[i]:indptr[i+1]]]`` for every row i (rows must be non-empty).

    Vectorised: each name gets the separator unless it ends its row, then ``np.add.reduceat``
    concatenates each row in C (a Python join per row is ~10x slower on 10^6 rows).
    """
    tokens = names[indices]
    last = np.zeros(len(indices), bool)
    last[indptr[1:] - 1] = True
    tokens = tokens + np.where(last, "", sep).astype(object)
    return np.add.reduceat(tokens, indptr[:-1])


def over_representation(gene_lists: Mapping[Hashable, Iterable[str]], background: Sequence[str], library, *,
                        min_size: int = 5, max_size: int = 500, min_overlap: int = 1,
                        max_q: float | None = None) -> pd.DataFrame:
    """Hypergeometric over-representation of every gene set in every gene list.

    Parameters
    ----------
    gene_lists
        ``{module: genes}``; genes are matched to the background case-insensitively and genes outside
        it are dropped (their number is in ``result.attrs["dropped_genes"]``).
    background
        The universe: the model's genes. Sets are restricted to it before anything else.
    library
        A :class:`GeneSetLibrary`, a shipped library name, a GMT path or ``"auto"`` (the library of
        the background's species).
    min_size, max_size
        Keep sets whose size *after restriction to the background* is in ``[min_size, max_size]``.
    min_overlap
        Report only pairs with at least this overlap. Pairs below it still count as tests in the
        FDR (so raising it never makes q-values smaller).
    max_q
        Report only rows with q <= ``max_q`` (after the FDR over all tests).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`RESULT_COLUMNS`, sorted by p-value: ``overlap`` = |module ∩ set|,
        ``set_size`` (restricted), ``module_size``, ``background`` (N), ``odds_ratio`` of the 2x2
        table (with 0.5 added to every cell when one is zero, so it stays finite), ``pvalue`` =
        P(X >= overlap), ``qvalue`` (BH over all module x set tests passing the size filters),
        ``neg_log10_q`` and ``genes`` (the overlap, ``;``-joined, in background order).
        ``attrs`` holds ``n_tests``, ``n_sets_tested``, ``match`` (a :class:`GeneMatch`) and
        ``dropped_genes``.
    """
    lib = load_library(library, genes=background)
    _check_sizes(min_size, max_size, min_overlap)
    S, report, genes, index = _restrict(lib, background)
    N = len(genes)
    _check_match(report, N, genes, lib)
    labels = list(gene_lists)
    Gm, dropped = _membership(gene_lists, labels, index, N)
    module_size = np.asarray(Gm.sum(axis=0)).reshape(-1)
    set_size = np.diff(S.indptr)
    sets_ok = np.nonzero((set_size >= max(min_size, 1)) & (set_size <= max_size))[0]
    modules_ok = np.nonzero(module_size > 0)[0]
    n_tests = len(sets_ok) * len(modules_ok)

    # overlaps = the sparse product S_ok (sets x genes) @ G (genes x modules), expanded term by term
    # so that each non-zero (set, module) pair also knows which genes it shares
    si, mi, k, seg_ptr, seg_genes = _sparse_overlaps(S[sets_ok], Gm[:, modules_ok])
    order_pairs = np.arange(len(k))
    n_set = set_size[sets_ok][si]
    n_mod = module_size[modules_ok][mi]
    p = _hypergeom_sf(k, N, n_set, n_mod) if k.size else np.zeros(0)
    # pairs with zero overlap have p = 1 and are counted through n_tests
    q = benjamini_hochberg(p, n_tests=max(n_tests, p.size))

    keep = k >= max(min_overlap, 1)
    if max_q is not None:
        keep &= q <= max_q
    si, mi, k, n_set, n_mod, p, q, order_pairs = (a[keep] for a in (si, mi, k, n_set, n_mod, p, q, order_pairs))
    order = np.lexsort((si, mi, p))
    si, mi, k, n_set, n_mod, p, q, order_pairs = (a[order] for a in (si, mi, k, n_set, n_mod, p, q, order_pairs))

    label_arr = np.asarray(labels)
    if label_arr.dtype.kind not in "iu":  # integer module ids stay a fast int column
        label_arr = label_arr.astype(object)
    out = pd.DataFrame({
        "module": label_arr[modules_ok[mi]], "term": np.asarray(lib.terms, dtype=object)[sets_ok[si]],
        "library": lib.name, "overlap": k.astype(int), "set_size": n_set.astype(int),
        "module_size": n_mod.astype(int), "background": N, "odds_ratio": _odds_ratio(k, n_set, n_mod, N),
        "pvalue": p, "qvalue": q, "neg_log10_q": 0.0 - np.log10(np.maximum(q, np.finfo(float).tiny)),
        "genes": _overlap_genes(np.asarray(genes, dtype=object), k, seg_ptr[order_pairs], seg_genes),
    }, columns=RESULT_COLUMNS, copy=False)  # fresh arrays: skip the copy and block consolidation
    out.attrs.update(n_tests=int(n_tests), n_sets_tested=int(len(sets_ok)), match=report, dropped_genes=dropped)
    return out


def _check_sizes(min_size, max_size, min_overlap) -> None:
    for name, v in (("min_size", min_size), ("max_size", max_size), ("min_overlap", min_overlap)):
        if not (isinstance(v, (int, np.integer)) and v >= 0):
            raise PerturbODEError(f"{name} must be a non-negative integer, got {v!r}", where=f"option '{name}'",
                                  fix="Give e.g. min_size=5, max_size=500")
    if max_size < min_size:
        raise PerturbODEError(f"max_size ({max_size}) is below min_size ({min_size})", where="option 'max_size'",
                              fix="Give max_size >= min_size")


def _check_match(report, N: int, genes, lib) -> None:
    if N == 0:
        raise PerturbODEError("The background (the model's genes) is empty", where="enrichment",
                              fix="Use a model with genes")
    if report.n_matched == 0:
        raise PerturbODEError(f"None of the {N} model genes is in library {lib.name!r} "
                              f"(e.g. {', '.join(genes[:3])} vs {', '.join(lib.genes[0][:3])})",
                              where="enrichment",
                              fix="Use the library for your species and gene identifiers (symbols vs ORF or "
                                  "Ensembl ids), or give your own .gmt")
    if report.fraction < 0.1:
        warnings.warn(f"Only {report.summary()}; is this the right species / identifier type?",
                      PerturbODEWarning, stacklevel=3)


def _membership(gene_lists, labels, index, N: int) -> tuple[sp.csc_matrix, int]:
    """Genes x modules 0/1 matrix of the lists (matched case-insensitively) and how many lists
    named a gene outside the background."""
    rows, cols, dropped = [], [], 0
    for j, key in enumerate(labels):  # one pass over the module lists (K lists of a few dozen genes)
        idx = {index.get(str(g).casefold(), -1) for g in gene_lists[key]}
        dropped += int(-1 in idx)
        idx.discard(-1)
        rows.extend(idx)
        cols.extend([j] * len(idx))
    Gm = sp.csc_matrix((np.ones(len(rows), np.int32), (np.asarray(rows, np.int64), np.asarray(cols, np.int64))),
                       shape=(N, len(labels)))
    return Gm, dropped


def _odds_ratio(k, n_set, n_mod, N) -> np.ndarray:
    """Odds ratio of each 2x2 table (a = overlap, b = module only, c = set only, d = neither), with
    0.5 added to every cell of a table that has a zero so it stays finite."""
    a = k.astype(float)
    b, c, d = n_mod - a, n_set - a, N - n_mod - n_set + a
    zero = (a == 0) | (b == 0) | (c == 0) | (d == 0)
    a, b, c, d = (x + 0.5 * zero for x in (a, b, c, d))
    return (a * d) / (b * c)


def _overlap_genes(genes_arr, k, seg_start, seg_genes) -> np.ndarray:
    """The ``;``-joined overlap genes of the reported rows: their segments of the expanded product."""
    if not len(k):
        return np.zeros(0, dtype=object)
    new_ptr = np.zeros(len(k) + 1, np.int64)
    np.cumsum(k, out=new_ptr[1:])
    pos = np.repeat(seg_start - new_ptr[:-1], k) + np.arange(new_ptr[-1])
    return _join_rows(genes_arr, seg_genes[pos], new_ptr)


def enrich_modules(weights, library="auto", *, role: str = "target", method: str = "top_n", top_n: int = 50,
                   share: float = 0.5, threshold: float | None = None, modules: Sequence[int] | None = None,
                   min_size: int = 5, max_size: int = 500, min_overlap: int = 1,
                   max_q: float | None = None) -> pd.DataFrame:
    """Over-representation of a library in every module of a model.

    Parameters
    ----------
    weights
        A model (with ``module_weights()``), a :class:`~perturbode_core.tools.modules.ModuleWeights` or
        a dict with keys ``A, B, alpha, gene_names``.
    library
        Shipped library name, GMT path, :class:`GeneSetLibrary`, or ``"auto"`` (default: the
        library of the model genes' species).
    role
        Which genes make a module's list: ``"target"`` (default: the genes the module drives,
        a co-regulated programme), ``"regulator"`` or ``"both"``.
    method, top_n, share, threshold, modules
        Member selection, as in :func:`perturbode_core.tools.modules.module_members`.
    min_size, max_size, min_overlap, max_q
        As in :func:`over_representation`.

    Returns
    -------
    pandas.DataFrame
        As :func:`over_representation`, with ``module`` the integer module id, plus a
        ``module_strength`` column.
    """
    from perturbode_core.tools.modules import module_gene_lists, module_members, module_strength, weights_from_model

    check_choice("role", role, ("target", "regulator", "both"))
    w = weights_from_model(weights)
    members = module_members(w.A, w.B, w.alpha, w.gene_names,
                             role={"target": "targets", "regulator": "regulators"}.get(role, "both"),
                             method=method, top_n=top_n, share=share, threshold=threshold, modules=modules)
    lists = module_gene_lists(members, role=role)
    res = over_representation(lists, w.gene_names, library, min_size=min_size, max_size=max_size,
                              min_overlap=min_overlap, max_q=max_q)
    strength = module_strength(w.A, w.B, w.alpha)
    res["module_strength"] = strength[res["module"].to_numpy(int)] if len(res) else np.zeros(0)
    res.attrs["role"] = role
    return res


def empty_result_message(result: pd.DataFrame, max_q: float | None = None) -> str | None:
    """A sentence saying why nothing is shown, or None when some row passes ``max_q``.

    For figures and pages: an empty result is said in words (how many genes matched, how many sets
    were tested, the best q reached) rather than drawn as empty axes.
    """
    if "qvalue" not in result.columns:  # not an enrichment result at all: nothing tested
        result = pd.DataFrame(columns=RESULT_COLUMNS)
    shown = result if max_q is None else result[result["qvalue"] <= max_q]
    if len(shown):
        return None
    match = result.attrs.get("match")
    matched = f"{match.n_matched} of {match.n_genes} genes are in {match.library}" if match is not None else ""
    if len(result) == 0:
        return (f"No gene set could be tested: {matched or 'few genes match the library'}, and no set keeps "
                f"enough of them after restriction to the model's genes. Check the species and gene identifiers, "
                f"or lower the minimum set size.")
    best = result.sort_values("qvalue", kind="stable").iloc[0]
    return (f"No gene set is enriched at q ≤ {max_q:g} in any module ({result.attrs.get('n_sets_tested', '?')} sets "
            f"tested; {matched}). The best was {best['term']} in module {best['module']} (q = {best['qvalue']:.2g}, "
            f"{int(best['overlap'])} of {int(best['module_size'])} genes).")


def top_terms(result: pd.DataFrame, *, n: int = 5, max_q: float | None = None,
              modules: Sequence | None = None) -> pd.DataFrame:
    """The ``n`` best terms (smallest p) of each module of an enrichment result."""
    r = result if max_q is None else result[result["qvalue"] <= max_q]
    if modules is not None:
        r = r[r["module"].isin(list(modules))]
    r = r.sort_values(["module", "pvalue", "term"], kind="stable")
    return r.groupby("module", sort=False).head(n).reset_index(drop=True)

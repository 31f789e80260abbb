"""Gene names as the data write them: which species they are, and aliases mapped to official symbols.

Species from the names alone (no download, no annotation database):

- yeast: most names are systematic ORF ids (``YAL027W``, ``YBR112C-A``);
- mouse: most names are capitalised (``Gata1``, ``Spi1``: MGI style);
- human: most names are upper case (``GATA1``, ``SPI1``: HGNC style).

When the case is mixed the shipped libraries decide: the species whose library holds more of the
names (case-insensitively) wins. Aliases (``genesets/aliases.tsv``: ``Pu.1`` -> ``SPI1``, ``SCL`` ->
``TAL1``, renamed HGNC symbols such as ``MARCH8`` -> ``MARCHF8``) let names used in published
models and older screens match gene-set libraries.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

SPECIES = ("human", "mouse", "yeast")
ALIAS_FILE = Path(__file__).resolve().parent / "genesets" / "aliases.tsv"
_ORF = re.compile(r"^Y[A-P][LR]\d{3}[WC](-[A-Z])?$")


@dataclass(frozen=True)
class SpeciesGuess:
    """The species of a gene list and why.

    Attributes
    ----------
    species
        One of :data:`SPECIES`.
    reason
        One sentence: the evidence (for messages and captions).
    """

    species: str
    reason: str


@functools.lru_cache(maxsize=1)
def aliases() -> dict[str, str]:
    """``{alias (case-folded): official symbol}`` from ``genesets/aliases.tsv``."""
    out = {}
    for line in ALIAS_FILE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#") or line.startswith("alias\t"):
            continue
        alias, symbol = line.split("\t")[:2]
        out[alias.strip().casefold()] = symbol.strip()
    return out


def official_symbol(gene: str) -> str | None:
    """The official symbol an alias stands for (case-insensitive), or None when it is no known alias."""
    return aliases().get(str(gene).casefold())


def detect_species(genes: Sequence[str]) -> SpeciesGuess:
    """Guess the species of ``genes`` from how they are written (module docstring)."""
    names = [str(g) for g in genes if str(g).strip()]
    if not names:
        return SpeciesGuess("human", "no gene names: human assumed")
    n = len(names)
    orf = sum(bool(_ORF.match(g)) for g in names)
    if orf > n / 2:
        return SpeciesGuess("yeast", f"{orf} of {n} genes are yeast ORF ids (e.g. {names[0]})")
    letters = [g for g in names if any(c.isalpha() for c in g)]
    upper = sum(g.upper() == g for g in letters)
    capital = sum(g[:1].isupper() and any(c.islower() for c in g[1:]) for g in letters)
    if upper > 0.7 * len(letters):
        return SpeciesGuess("human", f"{upper} of {len(letters)} gene names are upper case (human style)")
    if capital > 0.5 * len(letters):
        return SpeciesGuess("mouse", f"{capital} of {len(letters)} gene names are capitalised (mouse style, e.g. "
                                     f"{next(g for g in letters if g[:1].isupper() and g[1:] != g[1:].upper())})")
    return _by_overlap(names)


def _by_overlap(names) -> SpeciesGuess:
    from perturbode_core.tools.enrichment import match_genes

    counts = {sp: match_genes(names, lib).n_matched for sp, lib in (("human", "go_bp"), ("mouse", "mouse_go_bp"))}
    best = max(counts, key=counts.get)
    return SpeciesGuess(best, f"mixed case; {counts[best]} of {len(names)} genes are in the {best} GO library "
                              f"(vs {min(counts.values())})")

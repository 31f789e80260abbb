"""Boolean update rules: parsing, truth tables, and the signs of their regulators.

A rule such as ``(Gata1 or Gata2) and not Pu.1`` (BoolODE / scanpy style) or
``(GATA1 | GATA2) & !PU1`` (pyboolnet ``.bnet`` style) is parsed by a small recursive-descent
parser (never ``eval``: model files are data, not code) and evaluated on every combination of its
regulators. The truth table drives the Hill-cube kinetics of the simulator (the multilinear
interpolation of the Boolean function over Hill-transformed inputs, as in Wittmann et al. 2009 and
Krumsiek et al.'s Odefy), and its monotonicity in each regulator gives the sign of the edge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from perturbode_core.errors import PerturbODEError

_TOKEN = re.compile(r"\s*(&&|\|\||[()&|!~]|[A-Za-z0-9_.\-]+)")
_AND = {"and", "&", "&&"}
_OR = {"or", "|", "||"}
_NOT = {"not", "!", "~"}
_CONST = {"1": True, "true": True, "0": False, "false": False}
#: Rules with more regulators than this are refused (the truth table has 2**k rows).
MAX_REGULATORS = 14


def _tokenize(text: str, where: str) -> list[str]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise PerturbODEError(f"Cannot read Boolean rule {text!r} at character {pos + 1}", where=where,
                                  fix="Use names, and/or/not (or &, |, !) and parentheses")
        tokens.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens


class _Parser:
    """Recursive descent: or-expression > and-expression > not > atom."""

    def __init__(self, tokens: list[str], text: str, where: str):
        self.tokens, self.i, self.text, self.where = tokens, 0, text, where
        self.names: list[str] = []

    def _peek(self):
        return self.tokens[self.i].lower() if self.i < len(self.tokens) else None

    def _fail(self, msg: str):
        raise PerturbODEError(f"{msg} in Boolean rule {self.text!r}", where=self.where,
                              fix="Check the parentheses and operators of the rule")

    def parse(self):
        node = self._or()
        if self.i != len(self.tokens):
            self._fail(f"Unexpected {self.tokens[self.i]!r}")
        return node

    def _or(self):
        terms = [self._and()]
        while self._peek() in _OR:
            self.i += 1
            terms.append(self._and())
        return terms[0] if len(terms) == 1 else ("or", terms)

    def _and(self):
        terms = [self._not()]
        while self._peek() in _AND:
            self.i += 1
            terms.append(self._not())
        return terms[0] if len(terms) == 1 else ("and", terms)

    def _not(self):
        if self._peek() in _NOT:
            self.i += 1
            return ("not", self._not())
        return self._atom()

    def _atom(self):
        tok = self._peek()
        if tok is None:
            self._fail("Unexpected end")
        if tok == "(":
            self.i += 1
            node = self._or()
            if self._peek() != ")":
                self._fail("Missing ')'")
            self.i += 1
            return node
        if tok == ")" or tok in _AND | _OR:
            self._fail(f"Unexpected {self.tokens[self.i]!r}")
        self.i += 1
        if tok in _CONST:
            return ("const", _CONST[tok])
        name = self.tokens[self.i - 1]
        if name not in self.names:
            self.names.append(name)
        return ("var", name)


def _evaluate(node, values: dict[str, np.ndarray], size: int) -> np.ndarray:
    kind = node[0]
    if kind == "var":
        return values[node[1]]
    if kind == "const":
        return np.full(size, node[1])
    if kind == "not":
        return ~_evaluate(node[1], values, size)
    parts = [_evaluate(t, values, size) for t in node[1]]
    return np.logical_and.reduce(parts) if kind == "and" else np.logical_or.reduce(parts)


@dataclass(frozen=True)
class BooleanRule:
    """A target's Boolean update rule as a truth table over its regulators.

    Attributes
    ----------
    text
        The rule as written in the model file.
    regulators
        Regulator names in order of first appearance.
    table
        Boolean output for every combination; row ``r`` sets regulator ``i`` to bit
        ``(r >> (k - 1 - i)) & 1`` (the first regulator is the most significant bit).
    """

    text: str
    regulators: tuple[str, ...]
    table: np.ndarray

    @classmethod
    def parse(cls, text: str, *, where: str = "Boolean rule") -> "BooleanRule":
        """Parse a rule written with and/or/not (or ``&``, ``|``, ``!``), names and parentheses."""
        parser = _Parser(_tokenize(text, where), text, where)
        tree = parser.parse()
        names = parser.names
        k = len(names)
        if k > MAX_REGULATORS:
            raise PerturbODEError(f"Rule {text!r} has {k} regulators (at most {MAX_REGULATORS} supported)",
                                  where=where, fix="Split the rule or use an additive (SERGIO-style) network")
        rows = np.arange(2 ** k)
        values = {n: ((rows >> (k - 1 - i)) & 1).astype(bool) for i, n in enumerate(names)}
        table = np.asarray(_evaluate(tree, values, 2 ** k), dtype=bool)
        return cls(text=text.strip(), regulators=tuple(names), table=table)

    def signs(self) -> dict[str, int]:
        """Sign of each regulator that influences the output.

        +1 when switching it on never lowers the output (activation), -1 when it never raises it
        (repression), 0 when it does both (non-monotone). Regulators that never change the output
        are left out (they are not edges).
        """
        k = len(self.regulators)
        cube = self.table.reshape((2,) * k) if k else self.table
        out: dict[str, int] = {}
        for i, name in enumerate(self.regulators):
            on = np.take(cube, 1, axis=i).astype(int)
            off = np.take(cube, 0, axis=i).astype(int)
            diff = on - off
            up, down = bool((diff > 0).any()), bool((diff < 0).any())
            if up or down:
                out[name] = 1 if up and not down else -1 if down and not up else 0
        return out

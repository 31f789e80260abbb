"""The one colour language of every figure, page, report and export.

Signs (of an edge, or of a change in expression) are always the same pair of colour-blind-safe
colours: blue for activation / up, vermillion for repression / down. Known-network overlays,
conditions and modules have their own fixed palettes here, so no figure picks colours itself.
"""

from __future__ import annotations

from plotly.colors import qualitative

#: Colours by sign: activation / up (blue) and repression / down (vermillion); 0 grey.
SIGN_COLORS = {1: "#0072B2", -1: "#D55E00", 0: "#999999"}
#: Edge styles in the ground-truth overlay: colour and dash per status.
TRUTH_STYLES = {
    "true positive": {"color": "#009E73", "dash": "solid"},
    "false positive": {"color": "#D55E00", "dash": "dot"},
    "missed": {"color": "#999999", "dash": "dash"},
}
#: Node colours of the ground-truth overlay.
NODE_STATUS_COLORS = {"true regulator": "#009E73", "true target": "#56B4E9", "not in truth": "#BBBBBB"}
#: A qualitative palette long enough for a few dozen modules (plotly's Dark24 cycle).
MODULE_PALETTE = [
    "#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#B68100", "#750D86", "#EB663B", "#511CFB",
    "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32", "#778AAE", "#862A16", "#A777F1", "#620042",
    "#1616A7", "#DA60CA", "#6C4516", "#0D2A63", "#AF0038", "#222A2A",
]
#: Conditions, methods and scenarios: a long qualitative cycle.
PALETTE = qualitative.Plotly + qualitative.D3 + qualitative.Set2
#: The control condition is always grey.
CONTROL_COLOR = "#9e9e9e"
#: Regulators that are not among the measured genes (latent): drawn as diamonds in this colour.
UNMEASURED_COLOR = "#CC79A7"


def palette_color(i: int) -> str:
    """The ``i``-th colour of :data:`PALETTE` (cycling)."""
    return PALETTE[i % len(PALETTE)]


def sign_color(value: float) -> str:
    """:data:`SIGN_COLORS` of the sign of ``value``."""
    return SIGN_COLORS[1 if value > 0 else -1 if value < 0 else 0]


def rgba(hex_color: str, alpha: float) -> str:
    """``#rrggbb`` as a CSS ``rgba(...)`` with transparency ``alpha``."""
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"

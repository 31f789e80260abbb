"""The one colour language of every figure, page, report and export.

Signs (of an edge, of a module link, or of a change in expression) are always the same pair of
colour-blind-safe colours: blue for activation / up, vermillion for repression / down, on every
page, in the report and in GraphML exports (:func:`sign_color`); heatmaps of signed values use the
same two colours through white (:data:`DIVERGING_SCALE`). Known-network overlays, conditions,
modules and the model-versus-baselines bars have their own fixed palettes here, none of which
reuses the two sign colours, so no figure picks colours itself and blue never means two things.
"""

from __future__ import annotations

from plotly.colors import qualitative

#: Colours by sign: activation / up (blue) and repression / down (vermillion); 0 grey.
SIGN_COLORS = {1: "#0072B2", -1: "#D55E00", 0: "#999999"}
#: The colours' names, for captions and report text ("blue activates, vermillion represses").
SIGN_COLOR_NAMES = {1: "blue", -1: "vermillion", 0: "grey"}
#: Signed heatmaps (G, module activity change): repression / down vermillion, 0 white, activation / up blue.
DIVERGING_SCALE = [[0.0, SIGN_COLORS[-1]], [0.5, "#F7F7F7"], [1.0, SIGN_COLORS[1]]]
#: Edge styles in the ground-truth overlay: colour and dash per status. A predicted edge whose sign
#: contradicts the known one is a "wrong sign" edge, never a true positive.
TRUTH_STYLES = {
    "true positive": {"color": "#009E73", "dash": "solid"},
    "wrong sign": {"color": "#CC79A7", "dash": "dashdot"},
    "false positive": {"color": "#E69F00", "dash": "dot"},
    "missed": {"color": "#999999", "dash": "dash"},
}
#: Node colours of the ground-truth overlay.
NODE_STATUS_COLORS = {"true regulator": "#009E73", "true target": "#56B4E9", "not in truth": "#BBBBBB"}
#: Module colours: the strongest modules get one each; the rest share :data:`OTHER_COLOR`
#: (a few dozen distinct hues cannot be told apart).
MODULE_PALETTE = ["#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#332288", "#117733", "#882255", "#44AA99",
                  "#999933", "#AA4499"]
#: Modules beyond the palette, "other" groups and unlabelled points.
OTHER_COLOR = "#C8C8C8"
#: The model's bars beside the baselines' greys (not a sign colour: a bar is not an activation).
MODEL_COLOR = "#222222"
BASELINE_GREYS = ["#8C8C8C", "#B0B0B0", "#CFCFCF", "#6E6E6E", "#DCDCDC"]
#: Conditions, scenarios and series: a long qualitative cycle that starts without the sign colours.
PALETTE = ["#000000", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#F0E442"] + qualitative.Dark24
#: The control condition is always grey.
CONTROL_COLOR = "#9e9e9e"
#: Regulators that are not among the measured genes (latent): open (white, dark-outlined) diamonds,
#: so they never share a colour with a module or a condition.
UNMEASURED_COLOR = "#FFFFFF"


def palette_color(i: int) -> str:
    """The ``i``-th colour of :data:`PALETTE` (cycling)."""
    return PALETTE[i % len(PALETTE)]


def module_color(i: int) -> str:
    """The colour of the ``i``-th strongest module (:data:`OTHER_COLOR` past the palette)."""
    return MODULE_PALETTE[i] if 0 <= i < len(MODULE_PALETTE) else OTHER_COLOR


def sign_color(value: float) -> str:
    """:data:`SIGN_COLORS` of the sign of ``value``."""
    return SIGN_COLORS[1 if value > 0 else -1 if value < 0 else 0]


def sign_legend(positive: str = "activation", negative: str = "repression") -> str:
    """The colour key in words, e.g. "blue: activation, vermillion: repression"."""
    return f"{SIGN_COLOR_NAMES[1]}: {positive}, {SIGN_COLOR_NAMES[-1]}: {negative}"


def rgba(hex_color: str, alpha: float) -> str:
    """``#rrggbb`` as a CSS ``rgba(...)`` with transparency ``alpha``."""
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def readable_layout(fig, **layout):
    """Every label inside the figure, whatever renders it (the report has no Streamlit theme).

    Axis tick labels and titles push the margins out as far as they need (``automargin``) and the
    title gets room of its own, so gene names are never clipped and axis titles never sit on top of
    their tick labels. Returns ``fig``.
    """
    fig.update_layout(margin=dict(l=20, r=20, t=60 if layout.get("title") or fig.layout.title.text else 30, b=20),
                      **layout)
    fig.update_xaxes(automargin=True, title_standoff=8)
    fig.update_yaxes(automargin=True, title_standoff=8)
    return fig

"""The book's figure style (`set_style`), its colour-blind-safe colours, and the data label of a
figure (`_mark`), which the figure modules share."""
from __future__ import annotations

import sys

import matplotlib as mpl
from matplotlib.figure import Figure

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
COLORS = {
    "lips": "#D55E00", "hand": "#0072B2", "pose": "#009E73", "face": "#9A9A9A",      # landmark groups
    "left_hand": "#0072B2", "right_hand": "#CC79A7",                                  # the two hands
    "train": "#0072B2", "val": "#D55E00", "accent": "#E69F00", "neutral": "#555555",  # curves and marks
}
CYCLE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
WIDTH = 7.0          # inches: the width of the book's text column at the default dpi


def set_style() -> None:
    """The book's figure style: light grid, no top/right spines, colour-blind-safe colours.

    Every chapter calls it once (through `book.setup`); all figures assume it.
    """
    mpl.rcParams.update({
        # a figure as wide as the text column, laid out without clipped labels
        "figure.figsize": (WIDTH, 3.4), "figure.dpi": 100, "savefig.dpi": 100, "savefig.bbox": "tight",
        "figure.constrained_layout.use": True,
        # text: bold titles, small ticks and legends
        "font.size": 9.5, "figure.titlesize": 10.5, "figure.titleweight": "bold", "axes.titlesize": 10.5,
        "axes.titleweight": "bold", "axes.labelsize": 9.5, "xtick.labelsize": 8.5, "ytick.labelsize": 8.5,
        "legend.fontsize": 8.5, "legend.frameon": False,
        # axes: light grid, no top/right spines, the colour-blind-safe cycle
        "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
        "grid.linewidth": 0.6, "axes.prop_cycle": mpl.cycler(color=CYCLE),
        "animation.embed_limit": 8.0,     # MB; the book's animations stay far below
    })
    if "ipykernel" in sys.modules:        # sharp figures on high-resolution screens
        from matplotlib_inline.backend_inline import set_matplotlib_formats
        set_matplotlib_formats("retina")


def _mark(fig: Figure, data: str | None) -> Figure:
    """Say which data `fig` shows: `data` ("synthetic", "real") in brackets after the figure's
    title, that is its suptitle, or else the title of its first panel."""
    if data and fig.get_suptitle():
        fig.suptitle(f"{fig.get_suptitle()} ({data})")
    elif data:
        fig.axes[0].title.set_text(f"{fig.axes[0].get_title()} ({data})".lstrip())
    return fig

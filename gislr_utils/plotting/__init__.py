"""Every figure of the book, in one consistent style (`set_style`).

Each function takes data (arrays, DataFrames) and returns a `matplotlib.figure.Figure` (or an
animation); none of them computes model or data results itself, so a chapter cell reads "compute
with gislr_utils, then draw with plotting". The figures that depend on the data take a label
`data` ("synthetic", "real") that their title shows. The modules, by kind:

- `style`: `set_style` and the colour-blind-safe colours;
- `skeleton`: skeleton drawings and animations of raw frames (chapters 1, 2 and 7);
- `results`: attention, the position index and the training curves (chapters 2-4).

The figures that only one chapter draws are drawn in that chapter's hidden cells.
"""
from .results import plot_attention_maps, plot_history, plot_position_index
from .skeleton import animate_clips, animation_html, plot_skeleton, plot_skeleton_pair, skeleton_limits
from .style import COLORS, CYCLE, WIDTH, set_style

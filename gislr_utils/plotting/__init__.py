"""Every figure of the book, in one consistent style (`set_style`).

Each function takes data (arrays, DataFrames) and returns a `matplotlib.figure.Figure` (or an
animation); none of them computes model or data results itself, so a chapter cell reads "compute
with gislr_utils, then draw with plotting". The figures that depend on the data take a label
`data` ("synthetic", "real") that their title shows. The modules, by kind:

- `style`: `set_style` and the colour-blind-safe colours;
- `skeleton`: skeleton drawings and animations of raw frames (chapters 1 and 2);
- `data`: one clip's preprocessing and the per-landmark boxplots (chapter 2);
- `results`: attention, training curves and evaluation (chapters 3-5).
"""
from .data import landmark_box_stats, plot_landmark_boxplots, plot_preprocessing, plot_real_vs_synthetic_boxplots
from .results import (plot_attention_maps, plot_confusion, plot_f1_per_sign, plot_history, plot_landmark_weights,
                      plot_matrices, plot_position_index)
from .skeleton import (animate_clip, animate_clip_pair, animation_html, plot_selected_landmarks, plot_skeleton,
                       plot_skeleton_pair, skeleton_limits)
from .style import COLORS, CYCLE, WIDTH, set_style


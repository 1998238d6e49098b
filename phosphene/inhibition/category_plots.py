"""Pictures of the tension categories: E⁺ vs E⁻ coloured by category with the thresholds drawn, and
a panel of examples per category (each image beside its φ⁺/φ⁻ overlay), like the inhibition paper's
Fig. 4 B-F. Drawn with Agg, without pyplot."""

from __future__ import annotations

import os
import textwrap

import numpy as np
import torch
from matplotlib.figure import Figure

from ..io.display import new_figure
from .categories import CATEGORIES, COLOURS, DESCRIPTIONS, CategoryThresholds
from .tension_plots import _save, overlay, scale_legend, smooth_maps


def category_scatter(e_plus: np.ndarray, e_minus: np.ndarray, categories: np.ndarray,
                     thresholds: CategoryThresholds, title: str, path: str | os.PathLike | None = None
                     ) -> Figure:
    """E⁺ vs E⁻ per image coloured by category (counts in the legend), with the "none" box and the
    tense corner (T ≥ tense) drawn at the thresholds."""
    fig = new_figure((6.4, 5.2))
    ax = fig.subplots()
    mean_plus, mean_minus = max(float(np.mean(e_plus)), 1e-12), max(float(np.mean(e_minus)), 1e-12)
    for name in CATEGORIES:
        rows = categories == name
        ax.scatter(e_plus[rows], e_minus[rows], s=12, color=COLOURS[name], edgecolors="none",
                   label=f"{name}: {DESCRIPTIONS[name]} ({int(rows.sum())})")
    low_x, low_y = thresholds.low * mean_plus, thresholds.low * mean_minus
    ax.plot([0, low_x, low_x], [low_y, low_y, 0], color="#616161", lw=0.8, ls="--")
    tense_x, tense_y = thresholds.tense * mean_plus, thresholds.tense * mean_minus
    top_x, top_y = ax.get_xlim()[1], ax.get_ylim()[1]
    ax.plot([tense_x, tense_x, top_x], [top_y, tense_y, tense_y], color="#616161", lw=0.8, ls=":")
    ax.text(tense_x, tense_y, f"  T ≥ {thresholds.tense:g}", fontsize=7, va="bottom", color="#424242")
    ax.set_xlabel("E⁺ (excitation)")
    ax.set_ylabel("E⁻ (inhibition)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=7, frameon=False, ncols=1)
    ax.set_title(title, fontsize=9)
    if path is not None:
        _save(fig, path)
    return fig


def category_panel(images: dict[str, torch.Tensor], phi_plus: dict[str, torch.Tensor],
                   phi_minus: dict[str, torch.Tensor], captions: dict[str, list[str]],
                   counts: dict[str, int], title: str, path: str | os.PathLike) -> None:
    """One row per category: up to n images (3, S, S), each followed by its φ⁺/φ⁻ overlay; the row
    is labelled with the category and its count; empty categories say so."""
    n = max([len(v) for v in images.values()] + [1])
    fig = new_figure((1.55 * 2 * n + 3.0, 1.75 * len(CATEGORIES) + 0.6))
    axes = fig.subplots(len(CATEGORIES), 2 * n + 2, squeeze=False,
                        gridspec_kw={"width_ratios": [1.3] + [1] * (2 * n) + [0.8], "wspace": 0.04,
                                     "hspace": 0.32})
    for row, name in enumerate(CATEGORIES):
        shown = images.get(name)
        for ax in axes[row]:
            ax.set_axis_off()
        description = textwrap.fill(DESCRIPTIONS[name], 18, break_on_hyphens=False)
        label = f"{name} ({counts.get(name, 0)})\n{description}"
        axes[row, 0].text(1.0, 0.5, label, transform=axes[row, 0].transAxes, ha="right", va="center",
                          fontsize=7.5, color=COLOURS[name])
        if shown is None or len(shown) == 0:
            axes[row, 1].text(0.0, 0.5, "no image in this category", ha="left", va="center", fontsize=7,
                              transform=axes[row, 1].transAxes)
            continue
        plus, minus = smooth_maps(phi_plus[name], phi_minus[name], shown.shape[-1])
        for i in range(len(shown)):
            axes[row, 1 + 2 * i].imshow(shown[i].detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
            axes[row, 1 + 2 * i].set_title(captions[name][i], fontsize=6)
            axes[row, 2 + 2 * i].imshow(overlay(shown[i], plus[i], minus[i]))
    scale_legend(axes[len(CATEGORIES) // 2, 2 * n + 1])
    axes[len(CATEGORIES) // 2, 2 * n + 1].set_axis_on()
    fig.suptitle(title, fontsize=10)
    _save(fig, path)

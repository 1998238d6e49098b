"""The superposition figure: per MTI, the image and the atoms' shares of its E⁺ (up, red) and E⁻
(down, blue), with its interference, channel overlap and superposition. Drawn with Agg, without
pyplot."""

from __future__ import annotations

import os

import numpy as np
import torch
from matplotlib.figure import Figure

from ..io.display import new_figure
from .superposition import Superposition
from .tension_plots import _save

PLUS, MINUS = "#c0392b", "#2471a3"


def shown_atoms(result: Superposition, limit: int = 12, floor: float = 0.05) -> list[int]:
    """The atoms on the x axis: those with a share ≥ ``floor`` of some image's E⁺ or E⁻, largest
    first, at most ``limit``; the rest are summed into "other"."""
    peak = np.maximum(result.share_plus.max(0), result.share_minus.max(0)) if len(result.e_plus) else []
    order = [int(k) for k in np.argsort(-np.asarray(peak), kind="stable") if peak[k] >= floor][:limit]
    return sorted(order)


def superposition_plot(result: Superposition, images: torch.Tensor, title: str,
                       path: str | os.PathLike | None = None) -> Figure:
    """One row per image (3, S, S): the image, then mirrored bars of atom shares of E⁺ and E⁻."""
    atoms = shown_atoms(result)
    n = len(result.interference)
    height = 1.55 * n + 0.9
    fig = new_figure((2.2 + 0.5 * (len(atoms) + 1) + 1.6, height))
    axes = fig.subplots(n, 2, squeeze=False, gridspec_kw={"width_ratios": [1, 0.32 * (len(atoms) + 1) + 1.2],
                                                           "wspace": 0.08, "hspace": 0.55})
    plus, minus = result.share_plus, result.share_minus
    x = np.arange(len(atoms) + 1)
    names = [str(k) for k in atoms] + ["other"]
    rest = [k for k in range(plus.shape[1]) if k not in atoms]
    for i in range(n):
        picture, bars = axes[i]
        picture.imshow(images[i].permute(1, 2, 0).clamp(0, 1).numpy())
        picture.set_axis_off()
        if i < len(result.labels):
            picture.set_title(result.labels[i], fontsize=6)
        up = np.append(plus[i, atoms], plus[i, rest].sum())
        down = np.append(minus[i, atoms], minus[i, rest].sum())
        bars.bar(x, up, color=PLUS, width=0.7, label="share of E⁺")
        bars.bar(x, -down, color=MINUS, width=0.7, label="share of E⁻")
        bars.axhline(0, color="#424242", lw=0.6)
        bars.set_ylim(-1.05, 1.05)
        bars.set_yticks([-1, 0, 1], ["1", "0", "1"], fontsize=6)
        bars.set_xticks(x, names, fontsize=6)
        bars.tick_params(length=2)
        flag = "  SUPERPOSED" if result.flagged[i] else ""
        bars.set_title(f"interference {result.interference[i]:.2f} · channel overlap "
                       f"{result.channel_overlap[i]:.2f} · superposition {result.superposition[i]:.2f}"
                       f"{flag} · residual {result.residual[i]:.0%}", fontsize=7, loc="left")
        for side in ("top", "right"):
            bars.spines[side].set_visible(False)
        if i == 0:
            bars.legend(fontsize=6, loc="upper right", frameon=False, ncols=2)
    axes[-1, 1].set_xlabel(f"atom of {result.dictionary} at {result.layer}", fontsize=7)
    fig.subplots_adjust(top=1 - 0.75 / height, bottom=0.45 / height)
    fig.suptitle(title, fontsize=8, y=1 - 0.15 / height)
    if path is not None:
        _save(fig, path)
    return fig

"""Pictures of a tension analysis (matplotlib figures drawn with Agg, without pyplot, so importing
this never changes the caller's backend, e.g. a notebook's inline plots): scatter, completeness,
MEI/MII/MTI grids.

φ⁺/φ⁻ maps use the 2-D colour scale of Hamblin et al. (METHODS §3): each map is thresholded to [0, 1]
between its 50th and 95th percentile, upsampled to the image and blurred; the colour's hue comes from
h = (φ⁺ - φ⁻ + 1) / 2 (h = 0 pure inhibition: blue, h = 1 pure excitation: red, h = 0.5 both:
magenta) and its opacity is max(φ⁺, φ⁻), drawn over a faded grey copy of the image.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.colors import TwoSlopeNorm, hsv_to_rgb
from matplotlib.figure import Figure

from ..io.display import new_figure
from ..io.images import atomic_write_bytes
from ..transforms import gaussian_blur

MARKS = {"mei": ("MEI", "#d62728", "o"), "mii": ("MII", "#1f77b4", "s"), "mti": ("MTI", "#9400d3", "D")}


def _save(fig: Figure, path: str | os.PathLike) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def threshold_map(phi: torch.Tensor) -> torch.Tensor:
    """(N, h, w) -> (N, h, w) in [0, 1]: 0 at or below each map's 50th percentile, 1 from its 95th."""
    flat = phi.flatten(1).float()
    low = flat.quantile(0.5, dim=1)[:, None, None]
    high = flat.quantile(0.95, dim=1)[:, None, None]
    return ((phi - low) / (high - low).clamp(min=1e-12)).clamp(0, 1)


def smooth_maps(phi_plus: torch.Tensor, phi_minus: torch.Tensor,
                size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Thresholded, upsampled (to ``size``) and blurred φ⁺, φ⁻: two (N, size, size) in [0, 1]."""
    out = []
    for phi in (phi_plus, phi_minus):
        m = threshold_map(phi.detach().cpu().float())
        m = F.interpolate(m[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
        out.append(gaussian_blur(m[:, None], 0.5 * size / phi.shape[-1])[:, 0].clamp(0, 1))
    return out[0], out[1]


def scale_colour(plus: np.ndarray, minus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour (..., 3) and opacity (...) of the 2-D scale for φ⁺, φ⁻ in [0, 1]."""
    h = (plus - minus + 1) / 2
    hue = (2 / 3 + h / 3) % 1.0  # blue (240°) -> magenta (300°) -> red (360°)
    hsv = np.stack([hue, np.ones_like(hue), np.ones_like(hue)], axis=-1)
    return hsv_to_rgb(hsv), np.maximum(plus, minus)


def overlay(image: torch.Tensor, plus: torch.Tensor, minus: torch.Tensor) -> np.ndarray:
    """(3, H, W) image and (H, W) maps in [0, 1] -> (H, W, 3) picture: colour over faded grey."""
    rgb = image.detach().cpu().float().permute(1, 2, 0).numpy()
    grey = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2])[..., None]
    faded = 0.45 + 0.35 * grey
    colour, alpha = scale_colour(plus.numpy(), minus.numpy())
    return np.clip((1 - alpha[..., None]) * faded + alpha[..., None] * colour, 0, 1)


def scale_legend(ax, steps: int = 64) -> None:
    """Draw the 2-D colour scale on ``ax``: φ⁺ to the right, φ⁻ upwards, over mid grey."""
    plus, minus = np.meshgrid(np.linspace(0, 1, steps), np.linspace(0, 1, steps))
    colour, alpha = scale_colour(plus, minus)
    picture = (1 - alpha[..., None]) * 0.62 + alpha[..., None] * colour
    ax.imshow(picture, origin="lower", extent=(0, 1, 0, 1))
    ax.set_xlabel("φ⁺ (excitation)", fontsize=8)
    ax.set_ylabel("φ⁻ (inhibition)", fontsize=8)
    ax.yaxis.set_label_position("right")  # clear of the map panel on its left
    ax.yaxis.tick_right()
    ax.set_xticks([0, 1])
    ax.set_yticks([0, 1])
    ax.tick_params(labelsize=7)
    ax.set_title("colour scale", fontsize=8)


def example_grid(images: torch.Tensor, phi_plus: torch.Tensor, phi_minus: torch.Tensor,
                 captions: Sequence[str], title: str, path: str | os.PathLike) -> None:
    """Images (N, 3, S, S) (top row) and their φ⁺/φ⁻ overlays (bottom row), plus the scale legend."""
    n, size = len(images), images.shape[-1]
    plus, minus = smooth_maps(phi_plus, phi_minus, size)
    fig = new_figure((1.9 * (n + 1), 3.9))
    axes = fig.subplots(2, n + 1, squeeze=False,
                        gridspec_kw={"width_ratios": [1] * n + [0.9], "hspace": 0.05})
    for i in range(n):
        axes[0, i].imshow(images[i].detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
        axes[0, i].set_title(captions[i], fontsize=7)
        axes[1, i].imshow(overlay(images[i], plus[i], minus[i]))
    for ax in axes[:, :n].flat:
        ax.set_axis_off()
    axes[0, n].set_axis_off()
    axes[1, 0].text(-0.04, 0.5, "φ⁺/φ⁻ map", transform=axes[1, 0].transAxes, rotation=90, ha="right",
                    va="center", fontsize=8)
    scale_legend(axes[1, n])
    fig.suptitle(title, fontsize=10)
    _save(fig, path)


def scatter_plot(e_plus: dict[str, np.ndarray], e_minus: dict[str, np.ndarray], f: np.ndarray,
                 marks: dict[str, np.ndarray], title: str, path: str | os.PathLike | None = None) -> Figure:
    """E⁺ vs E⁻ per image, one panel per attribution layer, coloured by f (diverging, centred at 0);
    the selected MEIs / MIIs / MTIs (row positions per kind) circled. Saved as a PNG at ``path``
    when given; returns the figure."""
    layers = list(e_plus)
    columns = min(3, len(layers))
    rows = -(-len(layers) // columns)
    fig = new_figure((4.8 * columns + 1.2, 4.5 * rows))
    axes = fig.subplots(rows, columns, squeeze=False, gridspec_kw={"hspace": 0.4})
    bound = max(float(np.abs(f).max()), 1e-6)
    norm = TwoSlopeNorm(vmin=min(float(f.min()), -1e-6 * bound), vcenter=0.0,
                        vmax=max(float(f.max()), 1e-6 * bound))
    for ax, layer in zip(axes.flat, layers):
        points = ax.scatter(e_plus[layer], e_minus[layer], c=f, cmap="RdBu_r", norm=norm, s=12,
                            edgecolors="none")
        for kind, chosen in marks.items():
            label, colour, marker = MARKS[kind]
            ax.scatter(e_plus[layer][chosen], e_minus[layer][chosen], s=70, facecolors="none",
                       edgecolors=colour, marker=marker, linewidths=1.4, label=f"{label}s")
        ax.set_xlabel("E⁺ (excitation)")
        ax.set_ylabel("E⁻ (inhibition)")
        ax.set_title(f"through {layer}", fontsize=9)
    for ax in axes.flat[len(layers):]:
        ax.set_axis_off()
    handles, labels = axes.flat[0].get_legend_handles_labels()
    # under the panels (the saved bounding box grows to hold it), clear of the title at the top
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.45, 0.0), ncols=max(1, len(labels)),
               fontsize=8, frameon=False)
    fig.colorbar(points, ax=list(axes.flat), label="f (target)", shrink=0.9)
    fig.suptitle(title, fontsize=10)
    if path is not None:
        _save(fig, path)
    return fig


def completeness_plot(rows: Sequence[dict], title: str, path: str | os.PathLike,
                      warnings: dict[str, str] | None = None) -> None:
    """Correlation of E⁺ - E⁻ with f per attribution layer (L1 and L2 variants, Pearson), with the
    scale of ΣA (mean |ΣA| / mean |f|) under each layer's name; layers in ``warnings``
    (normalization on the path to the target, ΣA about 0) are starred and explained below."""
    warnings = warnings or {}
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    fig = new_figure((max(4.5, 1.1 * len(layers) + 2), 3.6))
    ax = fig.subplots()
    x = np.arange(len(layers))
    for offset, variant, colour in ((-0.18, "l1", "#333333"), (0.18, "l2", "#999999")):
        values = [next(r["pearson"] for r in rows if r["layer"] == la and r["variant"] == variant)
                  for la in layers]
        bars = ax.bar(x + offset, values, width=0.36, color=colour,
                      label="E⁺ - E⁻ (L1, = ΣA)" if variant == "l1" else "E⁺₂ - E⁻₂ (L2)")
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.axhline(0, color="black", linewidth=0.6)
    scales = {r["layer"]: r.get("scale") for r in rows if r["variant"] == "l1"}
    names = [f"{la}{' *' if la in warnings else ''}"
             + (f"\nΣA/f {scales[la]:.2g}" if scales.get(la) is not None else "") for la in layers]
    ax.set_xticks(x, names, rotation=20, fontsize=8)
    if warnings:
        ax.text(0.0, -0.36, "* LayerNorm/GroupNorm between the layer and the target, or ΣA about 0 "
                "(ΣA/f: mean |ΣA| / mean |f|):\nΣA need not equal f there, so these figures are not "
                "meaningful",
                transform=ax.transAxes, fontsize=7, color="#b00000", va="top")
    ax.set_ylim(min(-0.1, ax.get_ylim()[0]), 1.1)
    ax.set_ylabel("Pearson r with f")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # off the bars
    ax.set_title(title, fontsize=10)
    _save(fig, path)

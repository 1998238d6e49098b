"""Facets of a unit: one visualization per kind of image that excites it.

A polysemantic unit responds to several unrelated things; one visualization blends them. Faceted
feature visualization (Nguyen et al. 2016; Goh et al.'s facets in Distill) separates them:

1. take the unit's top-k exemplars from a mining run;
2. describe each by its activation vector at ``facet_layer`` (default: the unit's own layer), pooled
   over positions with the unit's own activation map as the weight (so the vector describes what
   is where the unit fires);
3. centre the vectors (subtract the mean of all the unit's exemplars), normalize each to unit length
   and cluster them with k-means (scikit-learn) into ``n`` facets. Centring comes first: every
   exemplar of a unit shares one dominant direction (the unit's own pattern), so on raw vectors
   cosine k-means splits on noise around it; on centred ones it splits on what differs;
4. a facet's direction is its centroid minus the mean of all exemplars (what is *specific* to the
   facet), with the unit's own channel set to zero when ``facet_layer`` is the unit's layer (the
   pull goes toward what is specific to the facet, not toward more of the unit, which the unit
   term already asks for);
5. render ``n`` images at once, image i maximizing ``unit + weight · <a, d_i>``: the unit's channel
   mean plus the plain projection of the facet layer's activations (mean over positions) on the
   unit-length direction d_i (`objectives.direction` with ``cossim_pow=0``; a cosine factor would
   scale the pull down to a third of its size or less). With ``weight`` = 1 (the default) the two
   terms are within a factor of two on `_blocks.8` (docs/figures.md, facets).

``render_facets(model, run, layer, unit, n=4)``; CLI ``phosphene render --facets N --run RUN``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import objectives as obj
from .errors import PhospheneError, install_hint
from .io.images import image_grid, load_image
from .layers.pooling import pooled_vectors
from .layers.tap import LayerTap
from .mining import open as open_run
from .mining.reader import Example, MiningRun
from .models.wrapper import as_image_model
from .render import RenderResult, render


@dataclass
class Facets:
    """A unit's exemplars split into facets: ``labels[i]`` is the facet of ``examples[i]``;
    ``directions`` (n, C) the facet directions at ``facet_layer``; ``values[i]`` the unit's value on
    exemplar i (as mined)."""

    layer: str
    unit: int
    facet_layer: str
    examples: list[Example]
    labels: np.ndarray
    directions: torch.Tensor
    values: np.ndarray

    @property
    def n(self) -> int:
        return len(self.directions)

    def members(self, facet: int) -> list[Example]:
        """The exemplars of ``facet``, strongest first."""
        return [e for e, label in zip(self.examples, self.labels) if label == facet]

    def best_value(self, facet: int) -> float:
        """The unit's largest mined value among the exemplars of ``facet``."""
        return float(self.values[self.labels == facet].max())


@dataclass
class FacetResult:
    """The facets and their visualizations: ``render.images[i]`` is facet i; ``unit_values[i]`` the
    unit's channel mean on it (without the facet term)."""

    facets: Facets
    render: RenderResult
    unit_values: torch.Tensor
    settings: dict = field(default_factory=dict)


def find_facets(model: nn.Module, run: MiningRun | str | os.PathLike, layer: str, unit: int, n: int = 4,
                facet_layer: str | None = None, k: int | None = None, seed: int = 0) -> Facets:
    """Cluster the top-``k`` exemplars (default: all the run kept) of ``unit`` into ``n`` facets."""
    try:
        from sklearn.cluster import KMeans
    except ImportError as error:
        raise PhospheneError(f"facets need scikit-learn: {install_hint('dictionary')}") from error
    run = run if isinstance(run, MiningRun) else open_run(run)
    examples = run.top(layer, unit, k)
    if n < 1 or len(examples) < n:
        raise PhospheneError(f"{n} facets need at least {n} exemplars; the run has {len(examples)} for "
                             f"{layer}:{unit} (mine with a larger --k)")
    facet_layer = facet_layer or layer
    vectors = pooled_vectors(model, run.load(examples), layer, unit, facet_layer).double()
    mean = vectors.mean(0)
    normalized = F.normalize(vectors - mean, dim=1).numpy()  # centred first (module docstring)
    labels = KMeans(n_clusters=n, n_init=10, random_state=seed).fit_predict(normalized)
    directions = torch.stack([vectors[torch.as_tensor(labels == i)].mean(0) - mean if n > 1
                              else vectors.mean(0) for i in range(n)]).float()
    if facet_layer == layer:
        directions[:, unit] = 0  # toward what is specific to the facet, not more of the unit
    order = np.argsort([-max(e.value for e, lab in zip(examples, labels) if lab == i) for i in range(n)],
                       kind="stable")  # facet 0 holds the strongest exemplar
    remap = np.empty(n, dtype=np.int64)
    remap[order] = np.arange(n)
    return Facets(layer, unit, facet_layer, examples, remap[labels], directions[torch.as_tensor(order)],
                  np.array([e.value for e in examples]))


def render_facets(model: nn.Module, run: MiningRun | str | os.PathLike, layer: str, unit: int, n: int = 4,
                  facet_layer: str | None = None, weight: float = 1.0, k: int | None = None, seed: int = 0,
                  progress: bool | None = None, **render_options) -> FacetResult:
    """Find ``n`` facets of ``unit`` and render one image per facet in one batch, maximizing
    ``unit + weight · <a, d_i>`` (module docstring); ``render_options`` go to `render` (steps, size,
    param, ...)."""
    facets = find_facets(model, run, layer, unit, n, facet_layer, k, seed)
    objective = obj.channel(layer, [unit] * facets.n)
    if weight:
        objective = objective + weight * obj.direction(facets.facet_layer, facets.directions, cossim_pow=0)
    result = render(model, objective, seed=seed, progress=progress, **render_options)
    with torch.no_grad(), LayerTap(model, [layer]) as tap:
        acts = tap(result.images.to(as_image_model(model).device))[layer]
    values = acts[:, unit].float().mean((-2, -1)).cpu()
    settings = {"layer": layer, "unit": unit, "facets": facets.n, "facet_layer": facets.facet_layer,
                "weight": weight, "k": len(facets.examples), "seed": seed}
    return FacetResult(facets, result, values, settings)


def facet_sheet(result: FacetResult, path: str | os.PathLike, exemplars: int = 4) -> Path:
    """A PNG: one row per facet, its visualization then its strongest exemplars, with the unit's
    value on each."""
    facets = result.facets
    tiles, captions = [], []
    side = result.render.images.shape[-1]
    for i in range(facets.n):
        tiles.append(result.render.images[i])
        captions.append(f"facet {i}: {result.unit_values[i]:.2f}")
        members = facets.members(i)[:exemplars]
        loaded = [load_image(e.path, side) for e in members]
        for example, image in zip(members, loaded):
            tiles.append(image)
            captions.append(f"{example.value:.2f}")
        for _ in range(exemplars - len(members)):
            tiles.append(torch.ones(3, side, side))
            captions.append("")
    note = (f"{facets.layer}:{facets.unit}: each row a facet (k-means of its top exemplars at "
            f"{facets.facet_layer}), its visualization, then its strongest exemplars; "
            "numbers: the unit's mean")
    grid = image_grid(torch.stack(tiles), captions, columns=exemplars + 1, note=note)
    path = Path(path)
    grid.save(path)
    return path


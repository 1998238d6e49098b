"""``phosphene render --facets N --run RUN``: one visualization per facet of a unit (`phosphene.facets`).

Like `render_extras`, the options store their values in the click context and add nothing to the
render command's signature; the command hands over to `render_facets_cli` when ``--facets`` is given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import click

from ..errors import PhospheneError
from ..facets import facet_sheet, render_facets
from ..io.images import atomic_write_bytes
from ..layers.names import check_layers
from ..render import RenderConfig
from .options import NON_NEGATIVE_FLOAT, POSITIVE

FACETS_KEY = "phosphene.render_facets"


@dataclass
class FacetOptions:
    facets: int = 0
    run: str | None = None
    facet_layer: str | None = None
    facet_weight: float = 1.0
    facet_k: int | None = None


def facet_options_of() -> FacetOptions:
    """The facet options of the running command (defaults outside one)."""
    ctx = click.get_current_context(silent=True)
    return FacetOptions() if ctx is None else ctx.meta.setdefault(FACETS_KEY, FacetOptions())


def _store(field: str):
    def callback(ctx: click.Context, _param, value):
        if value is not None:
            setattr(ctx.meta.setdefault(FACETS_KEY, FacetOptions()), field, value)
        return value
    return callback


def facet_options(func):
    """``--facets N``, ``--run RUN``, ``--facet-layer``, ``--facet-weight``, ``--facet-k``."""
    options = [
        ("--facet-k", "facet_k", {"type": POSITIVE,
                                  "help": "Top exemplars clustered [default: all the run kept]."}),
        ("--facet-weight", "facet_weight", {"type": NON_NEGATIVE_FLOAT,
                                            "help": "Weight of <a, d> toward each facet [default: 1]."}),
        ("--facet-layer", "facet_layer",
         {"help": "Layer whose activations define facets [default: --layer]."}),
        ("--run", "run", {"type": click.Path(file_okay=False),
                          "help": "Mining run with the unit's top exemplars (for --facets)."}),
        ("--facets", "facets", {"type": click.IntRange(min=1, max=32),
                                "help": "Render N facets of the one unit of --channels: k-means of its top "
                                        "exemplars, one image each; writes facets.png."}),
    ]
    for name, field, kwargs in options:
        func = click.option(name, expose_value=False, default=None, callback=_store(field), **kwargs)(func)
    return func


def render_facets_cli(model, layer: str | None, channels: str | None, config: RenderConfig, param: str,
                      transforms: str, quiet: bool, out: str) -> None:
    """Render the facets of one unit; write one PNG per facet, facets.png and facets.json."""
    options = facet_options_of()
    if not options.run:
        raise PhospheneError("--facets needs --run RUN (a `phosphene mine` run with the unit's layer)")
    if not layer or not channels or not channels.strip().isdigit():
        raise PhospheneError("--facets renders one unit: give --layer and a single --channels N")
    check_layers(model, [layer] + ([options.facet_layer] if options.facet_layer else []))
    result = render_facets(model, options.run, layer, int(channels), options.facets, options.facet_layer,
                           options.facet_weight, options.facet_k, config.seed,
                           progress=False if quiet else None, config=config, param=param,
                           transforms=transforms)
    labels = [f"{layer}:{channels} facet {i}" for i in range(result.facets.n)]
    result.render.labels = labels
    result.render.save(out, prefix="facet")
    facet_sheet(result, Path(out) / "facets.png")
    record = {**result.settings,
              "per_facet": [{"facet": i, "unit_value": float(result.unit_values[i]),
                             "best_exemplar_value": result.facets.best_value(i),
                             "exemplars": [str(e.path) for e in result.facets.members(i)]}
                            for i in range(result.facets.n)]}
    atomic_write_bytes(Path(out) / "facets.json", json.dumps(record, indent=2).encode())
    click.echo(f"rendered {result.facets.n} facets of {layer}:{channels} -> {out}/facets.png")
    for row in record["per_facet"]:
        click.echo(f"  facet {row['facet']}: {len(row['exemplars'])} exemplars, unit {row['unit_value']:.3g} "
                   f"(best exemplar {row['best_exemplar_value']:.3g})")

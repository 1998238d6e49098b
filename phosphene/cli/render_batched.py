"""``phosphene render --layer L --channels all|SPEC --chunk N [--ray ...]``: a layer in batches."""

from __future__ import annotations

import click

from .. import objectives as obj
from ..distributed.executor import RayOptions
from ..distributed.layer_batches import render_batches
from ..render import RenderConfig
from .options import POSITIVE


def chunk_option(func):
    """``--chunk N``: units per optimization; renders batch folders (see `render_batches`)."""
    return click.option(
        "--chunk", type=POSITIVE, default=None,
        help="Render the units in batches of N (one optimization each, seed --seed + batch number) "
             "into OUT/batch_BBBB/; resumable. Default 16 with --channels all or --ray.")(func)


def render_layer_in_batches(model, layer: str, channels: str, kind: str, chunk: int | None,
                            per_unit: int, diversity: float, quiet: bool, out: str, ray: RayOptions,
                            config: RenderConfig, **options) -> None:
    """Render the ``channels`` of ``layer`` batch by batch (on Ray workers with ``ray.address``)."""
    units = None if channels.strip().lower() == "all" else obj.parse_units(channels)
    with ray.executor() as executor:
        index = render_batches(model, layer, units, out, 16 if chunk is None else chunk, kind, per_unit,
                               diversity, config, executor=executor, progress=False if quiet else None,
                               **options)
    click.echo(f"rendered {len(index['units'])} units of {layer} in {len(index['batches'])} batches "
               f"-> {out}")

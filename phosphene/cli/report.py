"""``phosphene report RUN --layers ... --out SITE`` (build) and ``phosphene report serve SITE``."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import PhospheneError, install_hint
from ..models import DEFAULT_MODEL
from ..models.checkpoints import odd_weights_allowed
from ..objectives import parse_units
from .app import main
from .common import dictionaries_requested, model_options, odd_weights_requested
from .options import (
    CROPS,
    NON_NEGATIVE,
    NON_NEGATIVE_FLOAT,
    PORT,
    POSITIVE,
    SEED,
    SIDE,
    STEPS,
    quality_option,
)

SUBCOMMANDS = ("build", "serve")


class DefaultBuildGroup(click.Group):
    """``phosphene report RUN ...`` means ``phosphene report build RUN ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["build", *args]
        return super().parse_args(ctx, args)


@main.group("report", cls=DefaultBuildGroup)
def report_group() -> None:
    """A browsable static site that explains every unit of some layers (from a mining run).

    \b
    phosphene report RUN --layers _blocks.4,_blocks.8 [--units 0-31] --out SITE
    phosphene report RUN --dictionary FILE --layers _blocks.8.kmeans16 --out SITE   (atoms)
    phosphene report serve SITE --port 8000
    """


@report_group.command("build")
@quality_option("report")
@click.argument("run", type=click.Path())
@click.option("--layers", required=True, help="Layers of the run, comma separated.")
@click.option("--units", default=None, help="Units of each layer, e.g. 0-31 (default: all).")
@click.option("--out", type=click.Path(), required=True, help="Site folder (created or extended).")
@model_options
@click.option("--steps", type=STEPS, default=256, show_default=True, help="Visualization steps.")
@click.option("--size", type=SIDE, default=224, show_default=True, help="Side of rendered images.")
@click.option("--diverse", type=POSITIVE, default=4, show_default=True, help="Visualizations per unit.")
@click.option("--diversity", type=NON_NEGATIVE_FLOAT, default=10.0, show_default=True,
              help="Diversity weight.")
@click.option("--param", type=click.Choice(["fourier", "pixel", "maco"]), default="fourier",
              show_default=True)
@click.option("--batch", type=POSITIVE, default=16, show_default=True, help="Units per optimization.")
@click.option("--k", type=POSITIVE, default=8, show_default=True, help="Top/bottom exemplars shown.")
@click.option("--probe", type=POSITIVE, default=128, show_default=True,
              help="Dataset images for E+/E-, tension, selectivity, completeness.")
@click.option("--mtis", type=NON_NEGATIVE, default=3, show_default=True, help="Most tense images shown.")
@click.option("--accent-steps", type=STEPS, default=64, show_default=True)
@click.option("--accent-crops", type=CROPS, default=8, show_default=True)
@click.option("--accent-top", type=NON_NEGATIVE, default=2, show_default=True,
              help="Accentuations in top exemplars.")
@click.option("--accent-unrelated", type=NON_NEGATIVE, default=1, show_default=True,
              help="Accentuations in unrelated images.")
@click.option("--accent-batch", type=POSITIVE, default=8, show_default=True,
              help="Seed images per accentuation call (memory; the pictures do not depend on it).")
@click.option("--neighbours", type=NON_NEGATIVE, default=6, show_default=True)
@click.option("--atlas", is_flag=True, help="An activation atlas on each layer page (umap-learn).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def build_command(run, layers, units, out, model_name, weights, device, quiet, **settings) -> None:
    """Build or extend the report site OUT from the mining RUN (done units are skipped)."""
    try:
        from ..report import ReportSettings, build_report
    except ImportError as exc:
        raise PhospheneError(f"phosphene report needs {exc.name}: {install_hint('report')}") from None

    names = [name.strip() for name in layers.split(",") if name.strip()]
    chosen = parse_units(units) if units else None
    model = None if model_name == DEFAULT_MODEL and not weights else model_name
    with odd_weights_allowed(odd_weights_requested()):
        result = build_report(run, names, out, chosen, model=model, settings=ReportSettings(**settings),
                              weights=weights, device=device, progress=False if quiet else None,
                              dictionaries=dictionaries_requested())
    total = sum(len(u) for u in result.units.values())
    spent = sum(result.seconds.values())
    shares = ", ".join(f"{k} {v / spent:.0%}" for k, v in result.seconds.items()
                       if spent and v > 0.05 * spent)
    click.echo(f"report: {result.computed} units computed, {total} in the site, {spent:.1f}s ({shares}) "
               f"-> {result.index}")
    if not quiet:
        click.echo(result.stage_table())


@report_group.command("serve")
@click.argument("site", type=click.Path())
@click.option("--port", type=PORT, default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (local by default).")
def serve_command(site, port, host) -> None:
    """Serve the static site SITE over HTTP (the pages also work straight from disk)."""
    from ..report.serve import serve

    if not (Path(site) / "index.html").is_file():
        raise PhospheneError(f"{site} holds no report (no index.html); build one with `phosphene report`")
    serve(site, host, port)

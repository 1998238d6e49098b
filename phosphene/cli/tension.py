"""``phosphene tension``: E⁺/E⁻ attribution of a unit over a dataset; MEIs, MIIs and MTIs."""

from __future__ import annotations

import click

from ..dictionary import load_dictionary
from ..errors import PhospheneError
from ..inhibition.categories import CategoryThresholds, category_counts
from ..inhibition.superposition import SuperpositionCheck
from ..inhibition.tension import tension_report
from ..units import parse_unit
from .app import main
from .common import model_options, open_model, target_options
from .options import NON_NEGATIVE_FLOAT, POSITIVE, POSITIVE_FLOAT, SIDE, WORKERS, quality_option


@main.command("tension")
@quality_option("tension")
@click.argument("run", required=False, type=click.Path())
@model_options
@click.option("--images", "images", type=click.Path(), default=None,
              help="Image folder (instead of a mining RUN).")
@target_options()
@click.option("--attr-layer", "attr_layers", multiple=True, required=True,
              help="Earlier layer to attribute through (repeat for several; the first one draws maps).")
@click.option("--n", "count", type=POSITIVE, default=8, show_default=True,
              help="Images per MEI/MII/MTI grid.")
@click.option("--batch-size", type=POSITIVE, default=16, show_default=True)
@click.option("--workers", type=WORKERS, default=2, show_default=True, help="Decoding processes (0: inline).")
@click.option("--size", type=SIDE, default=None,
              help="Crop side (default: the run's, else the model's input size).")
@click.option("--category-low", type=NON_NEGATIVE_FLOAT, default=0.5, show_default=True,
              help="Category 'none' below this E+/mean and E-/mean.")
@click.option("--category-tense", type=POSITIVE_FLOAT, default=1.0, show_default=True,
              help="Tense categories from this T = min(E+/mean, E-/mean).")
@click.option("--category-overlap", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Tense images whose phi+/phi- overlap is below this are 'spatial', else 'channel'.")
@click.option("--dictionary-at-attribution", "dictionary_file", type=click.Path(dir_okay=False),
              default=None,
              help="Dictionary file (`phosphene dictionary`) learned at an --attr-layer: superposition "
                   "diagnostic of the MTIs (superposition.png, tension.json).")
@click.option("--superposition-threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="An MTI is flagged when interference x channel overlap reaches this.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder.")
def tension_command(run, model_name, weights, device, images, target, attr_layers, position,
                    post_activation, count, batch_size, workers, size, category_low, category_tense,
                    category_overlap, dictionary_file, superposition_threshold, quiet, out) -> None:
    """Scatter of E⁺ vs E⁻ coloured by f, completeness per layer, MEI/MII/MTI grids with φ maps.

    RUN is a `phosphene mine` run folder (its images and preprocessing are used); or give --images.
    """
    if bool(run) == bool(images):
        raise PhospheneError("give either a mining RUN folder or --images DIR (not both)")
    model = open_model(model_name, weights, device)
    superposition = (SuperpositionCheck(load_dictionary(dictionary_file), superposition_threshold)
                     if dictionary_file else None)
    report = tension_report(model, run or images, parse_unit(target, position, not post_activation),
                            list(attr_layers), out, n=count, batch_size=batch_size, num_workers=workers,
                            size=size, progress=False if quiet else None,
                            thresholds=CategoryThresholds(category_low, category_tense, category_overlap),
                            superposition=superposition)
    table = report.table
    click.echo(f"{table.target}: {len(table.f)} images, attribution through {', '.join(table.layers)} "
               f"-> {out}")
    for row in table.completeness():
        click.echo(f"  completeness {row['layer']:<22} {row['variant']}  pearson {row['pearson']:6.3f}  "
                   f"spearman {row['spearman']:6.3f}  scale {row['scale']:.3g}"
                   + ("  (ΣA ≈ 0)" if row["sum_zero"] else ""))
    for warning in table.warnings.values():
        click.echo(f"warning: {warning}", err=True)
    counts = category_counts(table.categories())
    click.echo("  categories (" + table.primary + "): " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    top = report.selections["mti"][0]
    click.echo(f"  top MTI: {table.paths[top]} (T {table.tension()[top]:.3g}, f {table.f[top]:.3g})")
    if report.superposition is not None:
        s = report.superposition
        click.echo(f"  superposition ({s.dictionary} at {s.layer}, {len(s.interference)} MTIs, means): "
                   f"interference {s.interference.mean():.2f}, channel overlap "
                   f"{s.channel_overlap.mean():.2f}, superposition {s.superposition.mean():.2f}; flagged "
                   f"{int(s.flagged.sum())}; residual {s.residual.mean():.0%}")

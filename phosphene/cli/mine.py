"""``phosphene mine``: per-unit top-k / bottom-k dataset examples of layers over an image folder."""

from __future__ import annotations

from dataclasses import replace

import click

from ..io.decoding import DEFAULT_MAX_PIXELS
from ..mining import MiningPlan, run_mining
from ..mining.contact_sheet import contact_sheets
from .app import main
from .common import model_options, open_model
from .options import NON_NEGATIVE, POSITIVE, SIDE, WORKERS, FiniteFloat
from .ray_options import ray_options


@main.command("mine")
@model_options
@click.option("--layers", required=True, help="Comma-separated layer names, e.g. _blocks.8,_conv_head.")
@click.option("--images", "images", required=True, type=click.Path(),
              help="Image folder (recursive; jpg, png, webp, bmp, gif, tiff).")
@click.option("--k", type=POSITIVE, default=16, show_default=True, help="Images kept per unit and ranking.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Run folder.")
@click.option("--batch-size", type=POSITIVE, default=32, show_default=True)
@click.option("--workers", type=WORKERS, default=2, show_default=True, help="Decoding processes (0: inline).")
@click.option("--size", type=SIDE, default=None, help="Crop side (default: the model's input size).")
@click.option("--checkpoint-every", type=POSITIVE, default=50, show_default=True,
              help="Checkpoint every N batches (and at least every 2 minutes).")
@click.option("--max-pixels", type=POSITIVE, default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Decoding budget: JPEGs are decoded at 1/2-1/8 scale to fit it, other images "
                   "larger than this are skipped (about 8 bytes of memory per pixel while decoding).")
@click.option("--sheet-k", type=NON_NEGATIVE, default=8, show_default=True,
              help="Images per unit on the contact sheets contact_<layer>.png (0: no sheets).")
@click.option("--sheet-units", type=POSITIVE, default=64, show_default=True,
              help="Units (the first N of each layer) on the contact sheets.")
@click.option("--no-fold", "no_fold", is_flag=True,
              help="Keep BatchNorm layers as they are (default: fold those not mined).")
@click.option("--max-aspect", type=FiniteFloat(at_least=1.0), default=20.0, show_default=True,
              help="Skip images more than this many times longer than wide (resize bombs).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@ray_options
@click.option("--shard-batches", type=POSITIVE, default=4, show_default=True,
              help="With --ray: batches per shard (the unit of work and of resume).")
def mine_command(model_name, weights, device, layers, images, k, out, batch_size, workers, size,
                 checkpoint_every, max_pixels, sheet_k, sheet_units, no_fold, max_aspect, quiet,
                 ray, shard_batches) -> None:
    """Keep the top-k and bottom-k images of every unit (by channel mean, spatial max and min).

    Writes OUT/topk.parquet, images.parquet, skipped.csv, manifest.json and a contact sheet PNG per
    layer (a row per unit, its top images). Rerun the same command to resume an interrupted run.
    With --ray, Ray workers mine fixed shards of the image list (--workers then counts decoding
    processes per Ray worker); the tables are the same.
    """
    model = open_model(model_name, weights, device)
    names = [name.strip() for name in layers.split(",") if name.strip()]
    plan = MiningPlan(k=k, batch_size=batch_size, num_workers=workers, size=size,
                      checkpoint_every=checkpoint_every, max_pixels=max_pixels, max_aspect=max_aspect,
                      fold=not no_fold)
    with replace(ray, shard_batches=shard_batches).executor() as executor:
        run = run_mining(model, names, images, out, plan, progress=False if quiet else None,
                         executor=executor)
    sheets = contact_sheets(run, k=sheet_k, max_units=sheet_units) if sheet_k > 0 else {}
    summary = run.manifest["summary"]
    click.echo(f"mined {summary['n_used']} of {summary['n_images']} images for "
               f"{', '.join(run.layers)} (k={run.k}) -> {out}")
    if summary["n_skipped"]:
        reasons = ", ".join(f"{n} {r}" for r, n in summary["skipped_by_reason"].items())
        click.echo(f"skipped {summary['n_skipped']} files ({reasons}); list in {out}/skipped.csv")
    else:
        click.echo("skipped 0 files")
    for layer in run.layers:
        units = run.manifest["layer_shapes"][layer][0]
        sheet = f", contact sheet {sheets[layer].name}" if layer in sheets else ""
        click.echo(f"  {layer:<24} {units:5d} units{sheet}")
    click.echo(f"files: topk.parquet, images.parquet, skipped.csv, manifest.json in {out}")

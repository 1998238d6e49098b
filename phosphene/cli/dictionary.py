"""``phosphene dictionary``: learn a dictionary of feature directions (atoms) for a layer."""

from __future__ import annotations

from pathlib import Path

import click

from ..dictionary import METHODS, DictionarySettings, learn_dictionary
from ..dictionary.registry import FitOptions
from ..errors import PhospheneError
from ..mining import store
from .app import main
from .common import model_options, open_model
from .options import POSITIVE, SEED, SIDE, WORKERS, FiniteFloat


@main.command("dictionary")
@click.argument("source", type=click.Path())
@model_options
@click.option("--layer", required=True, help="Layer whose activation vectors are factorized, e.g. _blocks.8.")
@click.option("--method", type=click.Choice(METHODS), default="kmeans", show_default=True,
              help="kmeans (unit-norm cluster directions), pca (baseline), nmf (positive part), sparse "
                   "autoencoders topk / batchtopk / jumprelu, seminmf or convexnmf (the last five from "
                   "overcomplete; docs/dictionary.md).")
@click.option("--atoms", type=POSITIVE, default=16, show_default=True, help="Number of atoms K.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for the dictionary file (default: SOURCE when it is a mining run).")
@click.option("--name", default=None,
              help="Name of the atom layer LAYER.NAME (default METHOD+K, e.g. kmeans16).")
@click.option("--per-image", type=POSITIVE, default=64, show_default=True,
              help="Activation vectors (positions or tokens) drawn per image at most.")
@click.option("--max-vectors", type=POSITIVE, default=100_000, show_default=True,
              help="Vectors kept in the sample (a uniform reservoir): bounds the memory.")
@click.option("--held-out", type=FiniteFloat(non_negative=True), default=0.1, show_default=True,
              help="Share of the sample kept out of the fit for the metrics.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--size", type=SIDE, default=None,
              help="Image side (default: the mining run's, else the model's input size).")
@click.option("--batch-size", type=POSITIVE, default=32, show_default=True)
@click.option("--workers", type=WORKERS, default=2, show_default=True, help="Decoding processes (0: inline).")
@click.option("--epochs", type=POSITIVE, default=FitOptions.epochs, show_default=True,
              help="SAEs: passes over the sample.")
@click.option("--top-k", type=POSITIVE, default=FitOptions.top_k, show_default=True,
              help="topk / batchtopk: non-zero codes per vector (batchtopk: on average over a batch).")
@click.option("--lr", type=FiniteFloat(positive=True), default=FitOptions.lr, show_default=True,
              help="SAEs: Adam's learning rate.")
@click.option("--fit-batch", type=POSITIVE, default=FitOptions.fit_batch, show_default=True,
              help="SAEs: vectors per training step.")
@click.option("--sparsity-penalty", type=FiniteFloat(non_negative=True), default=FitOptions.sparsity_penalty,
              show_default=True, help="jumprelu: weight of the L0 term of the loss.")
@click.option("--max-iter", type=POSITIVE, default=FitOptions.max_iter, show_default=True,
              help="nmf / seminmf / convexnmf: solver iterations (fit and encode).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def dictionary_command(source, model_name, weights, device, layer, method, atoms, out, name, per_image,
                       max_vectors, held_out, seed, size, batch_size, workers, epochs, top_k, lr, fit_batch,
                       sparsity_penalty, max_iter, quiet) -> None:
    """Learn K atoms (directions in the channel space of --layer) from the activations of SOURCE, an
    image folder or a mining run, and write OUT/dictionary_<layer>_<name>.safetensors.

    Pass the file to other verbs with --dictionary FILE: its atoms are then the units of the layer
    LAYER.NAME (e.g. --layer _blocks.8.kmeans16 --channels 0-15, or --target _blocks.8.kmeans16:3).
    """
    if out is None:
        if not (Path(source) / store.MANIFEST).is_file():
            raise PhospheneError("give --out: SOURCE is an image folder, not a mining run")
        out = source
    model = open_model(model_name, weights, device)
    settings = DictionarySettings(method=method, atoms=atoms, per_image=per_image, max_vectors=max_vectors,
                                  held_out=held_out, seed=seed, size=size, batch_size=batch_size,
                                  num_workers=workers, epochs=epochs, top_k=top_k, lr=lr, fit_batch=fit_batch,
                                  sparsity_penalty=sparsity_penalty, max_iter=max_iter)
    dictionary, path = learn_dictionary(model, layer, source, out, settings, name=name,
                                        progress=False if quiet else None)
    click.echo(f"learned {dictionary.summary()} -> {path}")
    images = dictionary.images
    click.echo(f"images: {images['n_used']} of {images['n_images']} used, {images['n_skipped']} skipped "
               "(unreadable)")
    leading = [f"{a} ({100 * float(dictionary.energy[a]):.1f}%: units "
               + ", ".join(f"{c}{w:+.2f}" for c, w in dictionary.top_units(a, 3)) + ")"
               for a in dictionary.by_energy()[:3]]
    click.echo("largest atoms by energy share: " + "; ".join(leading))
    click.echo(f"use it: --dictionary {path} with layer {dictionary.unit_layer} "
               f"(units {dictionary.unit_layer}:0-{len(dictionary) - 1})")

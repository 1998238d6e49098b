"""``phosphene atoms``: the atom sheet of a dictionary (visualization and top exemplars per atom)."""

from __future__ import annotations

from pathlib import Path

import click

from .. import objectives as obj
from ..dictionary import Dictionary, atom_sheet, load_dictionary, unit_atoms_from_activations
from ..errors import PhospheneError
from ..io.images import save_image
from ..render import RenderConfig
from .app import main
from .common import model_options, open_model
from .options import POSITIVE, SEED, SIDE, STEPS, WORKERS


@main.command("atoms")
@click.argument("dictionary_file", type=click.Path(dir_okay=False))
@click.argument("source", type=click.Path())
@model_options
@click.option("--atoms", "chosen", default=None,
              help="Atoms to show, e.g. 0-7 (default: all, largest energy share first).")
@click.option("--k", type=POSITIVE, default=6, show_default=True, help="Top exemplars per atom.")
@click.option("--steps", type=STEPS, default=128, show_default=True, help="Visualization steps.")
@click.option("--size", type=SIDE, default=128, show_default=True, help="Visualization side.")
@click.option("--image-size", type=SIDE, default=None,
              help="Side the exemplars are read at (default: the mining run's, else the model's input).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--workers", type=WORKERS, default=2, show_default=True, help="Decoding processes (0: inline).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="The PNG to write (the sheet).")
@click.option("--unit-atoms", "unit_atoms", default=None, metavar="UNITS",
              help="Instead of the sheet: for these units of the dictionary's layer (e.g. 0-7), the atoms "
                   "that carry their top --k activations in the mining run SOURCE (shares of the "
                   "reconstruction).")
def atoms_command(dictionary_file, source, model_name, weights, device, chosen, k, steps, size, image_size,
                  seed, workers, quiet, out, unit_atoms) -> None:
    """Draw the atom sheet of DICTIONARY_FILE: a row per atom with its feature visualization, its top
    k images of SOURCE (an image folder or mining run), its energy share and its heaviest units.
    With --unit-atoms, print per unit the atoms behind its top activations instead."""
    dictionary = load_dictionary(dictionary_file)
    if unit_atoms is not None:
        model = open_model(model_name, weights, device)
        _print_unit_atoms(model, dictionary, source, obj.parse_units(unit_atoms), k)
        return
    if out is None:
        raise PhospheneError("give --out FILE.png for the atom sheet (or --unit-atoms UNITS)")
    model = open_model(model_name, weights, device)
    atoms = obj.parse_units(chosen) if chosen else None
    sheet = atom_sheet(model, dictionary, source, atoms, k, RenderConfig(steps=steps, size=size, seed=seed),
                       image_size=image_size, num_workers=workers, progress=False if quiet else None)
    save_image(sheet.image, Path(out))
    click.echo(f"atom sheet of {dictionary.unit_layer} ({len(sheet.atoms)} atoms, top {k} images each) "
               f"-> {out}")
    click.echo(f"visualization above the best image for {sheet.beaten} of {len(sheet.atoms)} atoms "
               "(mean <a, atom> over positions; values on the sheet)")


def _print_unit_atoms(model, dictionary: Dictionary, run: str, units: list[int], k: int) -> None:
    """One line per unit: its activation over its top-k images and the atoms with the largest shares."""
    found = unit_atoms_from_activations(model, dictionary, run, units, k)
    for unit, item in found.items():
        leading = ", ".join(f"atom {a} {100 * share:.1f}% ({t:+.3f})" for a, share, t in item.leading(3))
        click.echo(f"unit {unit} of {dictionary.layer} (top {len(item.images)} images, activation "
                   f"{item.activation:.3f}, reconstructed {item.reconstruction:.3f}): {leading}")
    click.echo(f"share: |atom term| / sum of |terms| over {dictionary.name}'s {len(dictionary)} atoms "
               "(docs/dictionary.md)")

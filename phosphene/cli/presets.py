"""``phosphene presets``: what ``--quality draft|standard|publication`` sets for each command."""

from __future__ import annotations

import click

from ..presets import preset_table
from .app import main


@main.command("presets")
def presets_command() -> None:
    """Show the quality presets (steps, crops, sizes) of every optimizing command."""
    click.echo(preset_table())
    click.echo("Options given on the command line win over the preset; publication is the default.")

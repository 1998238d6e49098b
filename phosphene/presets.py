"""Quality presets: how many steps, crops and pixels each optimizing command spends.

``draft`` finishes each README task in about two minutes on a 2-core CPU (for a first look and for
iterating), ``standard`` is a middle ground, ``publication`` is the full-size setting the papers use
and what every command does by default. A preset only fills in the settings a user did not give:
``--quality draft --steps 100`` renders 100 steps at the draft size.

Python: ``render(model, objective, **preset("render", "draft"))``.
"""

from __future__ import annotations

from typing import Any

from .errors import PhospheneError

QUALITIES = ("draft", "standard", "publication")

# Per command, per quality: the settings that preset sets (keyword names as the command's options).
# `publication` repeats each command's defaults, so that `--quality publication` is a no-op.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "render": {
        "draft": {"steps": 48, "size": 128},
        "standard": {"steps": 128, "size": 160},
        "publication": {"steps": 256, "size": None},
    },
    "accentuate": {
        "draft": {"steps": 32, "crops": 8},
        "standard": {"steps": 64, "crops": 12},
        "publication": {"steps": 100, "crops": 16},
    },
    "invert": {
        "draft": {"steps": 48, "crops": 2, "size": 128},
        "standard": {"steps": 128, "crops": 4, "size": 160},
        "publication": {"steps": 256, "crops": 4, "size": None},
    },
    "tension": {
        "draft": {"size": 128},
        "standard": {"size": 160},
        "publication": {"size": None},
    },
    "atlas": {
        "draft": {"steps": 32, "icon_size": 48, "size": 128},
        "standard": {"steps": 64, "icon_size": 64, "size": 160},
        "publication": {"steps": 128, "icon_size": 64, "size": None},
    },
    "report": {
        "draft": {"steps": 32, "size": 96, "diverse": 2, "probe": 64, "accent_steps": 16,
                  "accent_crops": 4, "accent_top": 1, "accent_unrelated": 1},
        "standard": {"steps": 128, "size": 160, "diverse": 4, "probe": 128, "accent_steps": 32,
                     "accent_crops": 8, "accent_top": 2, "accent_unrelated": 1},
        "publication": {"steps": 256, "size": 224, "diverse": 4, "probe": 128, "accent_steps": 64,
                        "accent_crops": 8, "accent_top": 2, "accent_unrelated": 1},
    },
    "experiment stimuli": {
        "draft": {"steps": 32, "visualizations": 5, "viz_size": 112, "image_size": 112, "units_per_layer": 3},
        "standard": {"steps": 128, "visualizations": 5, "viz_size": 160, "image_size": 160,
                     "units_per_layer": 6},
        "publication": {"steps": 256, "visualizations": 5, "viz_size": 224, "image_size": 224,
                        "units_per_layer": 6},
    },
    "experiment score": {
        "draft": {"steps": 48, "visualizations": 3, "trials": 100},
        "standard": {"steps": 96, "visualizations": 5, "trials": 200},
        "publication": {"steps": 128, "visualizations": 5, "trials": 200},
    },
}


def preset(command: str, quality: str) -> dict[str, Any]:
    """The settings ``quality`` gives ``command`` (a copy), e.g. ``preset("render", "draft")``.

    Keys that are None mean "the command's own default" (usually the model's input size) and are left
    out, so the result can be passed straight on as keywords.
    """
    if command not in PRESETS:
        raise PhospheneError(f"no presets for {command!r}; commands with presets: {', '.join(PRESETS)}")
    if quality not in QUALITIES:
        raise PhospheneError(f"unknown quality {quality!r}; choose one of {', '.join(QUALITIES)}")
    return {key: value for key, value in PRESETS[command][quality].items() if value is not None}


def preset_table() -> str:
    """The presets as a Markdown table (what docs and ``phosphene --help`` show)."""
    rows = ["| command | draft | standard | publication (default) |", "|---|---|---|---|"]
    for command, by_quality in PRESETS.items():
        cells = []
        for quality in QUALITIES:
            settings = by_quality[quality]
            cells.append(", ".join(f"{k.replace('_', '-')} {'model' if v is None else v}"
                                   for k, v in settings.items()))
        rows.append(f"| {command} | " + " | ".join(cells) + " |")
    return "\n".join(rows)

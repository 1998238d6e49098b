"""The experiment's multi-step pipelines, one per ``phosphene experiment`` verb (the CLI only parses
options and prints):

- `make_stimuli`: layers and units (given or picked), natural exemplars (a mining run or a folder),
  visualizations: a stimulus set on disk (``experiment stimuli``);
- `simulate_experiment`: a machine observer's sessions, their summary and plot (``experiment simulate``);
- `score_source`: per-unit 2-AFC scores of a stimulus set or of a mining run, via a stimulus set
  built from it (``experiment score``);
- `few_units_warning`, `skipped_note`, `admin_token_from`, `trusted_proxies`: the checks the verbs
  report.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from torch import nn

from ..errors import PhospheneError
from ..io.images import atomic_write_bytes
from . import polysemanticity as poly
from . import score as sc
from . import stimuli as st
from .analysis import Condition, plot, summarize, write_responses, write_summary
from .folder_exemplars import SKIPPED, exemplars_from_folder, read_skipped, write_skipped
from .observer import MachineObserver, simulate
from .stimuli import StimulusSet, StimulusSettings


@dataclass
class UnitChoice:
    """Which units a stimulus set shows: ``layers`` (early, middle, late; None: the middle block of
    each depth tertile, or the run's layers), ``units`` (one list per layer; None: ``per_layer``
    random ones drawn with ``seed``)."""

    layers: Sequence[str] | None = None
    units: Sequence[Sequence[int]] | None = None
    per_layer: int = 6
    seed: int = 0


def _layer_units(model: nn.Module, run: str | None, choice: UnitChoice
                 ) -> tuple[dict[str, str], dict[str, list[int]]]:
    """(depth -> layer, layer -> units) for ``choice``."""
    if choice.layers:
        depths = st.assign_depths(list(choice.layers))
    else:
        depths = st.run_layers(model, run) if run else st.depth_layers(model)
    if choice.units is None:
        return depths, st.pick_units(model, depths, choice.per_layer, choice.seed)
    if len(choice.units) != len(depths):
        raise PhospheneError(f"--units needs {len(depths)} ';'-separated lists")
    layer_units = {layer: list(group) for layer, group in zip(depths.values(), choice.units)}
    st.channel_counts(model, list(depths.values()))
    return depths, layer_units


def make_stimuli(model: nn.Module, out: str | os.PathLike, settings: StimulusSettings,
                 choice: UnitChoice | None = None, run: str | None = None, images: str | None = None,
                 progress: bool | None = None) -> tuple[StimulusSet, dict[str, str], dict[str, list[int]]]:
    """A stimulus set of ``model``'s units (``choice``) with exemplars from the mining ``run`` or the
    folder ``images`` (exactly one); returns it with (depth -> layer) and (layer -> units)."""
    if bool(run) == bool(images):
        raise PhospheneError("give exactly one of --run (a mining run) or --images (a folder)")
    depths, layer_units = _layer_units(model, run, choice or UnitChoice())
    if run:
        exemplars = st.exemplars_from_run(run, layer_units, settings.naturals, model.name)
    else:  # files that cannot be decoded are skipped and listed in OUT/skipped.csv (`skipped_note`)
        exemplars, skipped = exemplars_from_folder(model, images, layer_units, settings.naturals,
                                                   settings.image_size, progress)
        if skipped:
            write_skipped(Path(out) / SKIPPED, skipped)
        else:  # an earlier build's list would no longer be true
            (Path(out) / SKIPPED).unlink(missing_ok=True)
    result = st.build_stimuli(model, out, depths, layer_units, exemplars, settings, progress)
    return result, depths, layer_units


def skipped_note(out: str | os.PathLike) -> str | None:
    """One line on the files `make_stimuli` skipped into OUT/skipped.csv (counts by reason, an
    example, where the list is), or None when none was."""
    skipped = read_skipped(Path(out) / SKIPPED)
    if not skipped:
        return None
    reasons = Counter(reason.split(" (")[0] for _, reason in skipped)
    counts = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda rn: (-rn[1], rn[0])))
    return (f"skipped {len(skipped)} files ({counts}), e.g. {skipped[0][0]}: {skipped[0][1]}; "
            f"list in {Path(out) / SKIPPED}")


def few_units_warning(stimulus_set: StimulusSet, enough: int = 6) -> str | None:
    """With few units per layer every trial compares the same few units (3: always the same triple),
    so an observer's accuracy is that of those units, not of units in general: it can sit far below
    1/3 (docs/psychophysics.md, "Below chance"). The warning, or None."""
    few = {depth: len(units) for depth, units in stimulus_set.by_depth().items() if len(units) < enough}
    if not few:
        return None
    counts = ", ".join(f"{d} {n}" for d, n in few.items())
    return (f"few units per layer ({counts}); trials keep comparing the same units, so accuracies "
            f"describe those units only and can be far below chance; use --units-per-layer {enough} "
            f"or more")


@dataclass
class TrialDesign:
    """The trial design of a session: trials per condition, images per unit, catch trials, seed."""

    trials_per_condition: int = 2
    images_per_unit: Sequence[int] = (1, 3, 5)
    catch_trials: int = 2
    seed: int = 0


def simulate_experiment(stimulus_set: StimulusSet, machine: MachineObserver, participants: int,
                        design: TrialDesign, out: str | os.PathLike, progress: bool | None = None
                        ) -> list[Condition]:
    """``participants`` sessions of ``machine``; writes OUT/responses.csv, summary.csv, accuracy.png."""
    rows = simulate(stimulus_set, machine, participants, design.trials_per_condition,
                    design.images_per_unit, design.catch_trials, design.seed, progress=progress)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_responses(rows, out_dir / "responses.csv")
    conditions = summarize(rows)
    write_summary(conditions, out_dir / "summary.csv")
    plot(conditions, out_dir / "accuracy.png", f"{machine.name} on {stimulus_set.model} units")
    return conditions


def is_stimulus_set(path: str | os.PathLike) -> bool:
    """A stimulus folder's manifest.json lists units (a mining run's has its own manifest)."""
    manifest = Path(path) / "manifest.json"
    try:
        return manifest.is_file() and "units" in json.loads(manifest.read_text())
    except ValueError:
        return False


def score_source(stimulus_set: StimulusSet, machine: MachineObserver, out: str | os.PathLike,
                 layers: Sequence[str] | None = None, trials: int = 200, group_size: int = 3,
                 seed: int = 0, progress: bool | None = None, studied: nn.Module | None = None
                 ) -> list[sc.UnitScore]:
    """Per-unit 2-AFC scores of ``stimulus_set`` (its ``layers``, default all) by ``machine``;
    writes OUT/scores.parquet and scores.png. With the ``studied`` model, each unit's
    polysemanticity too (a column of scores.parquet) and its correlation with the score per query
    kind (OUT/polysemanticity.json, `psychophysics.polysemanticity`)."""
    if trials < 1 or group_size < 1:
        raise PhospheneError("--trials and --group must be at least 1")
    units = sc.stimulus_features(stimulus_set, machine, layers, progress)
    scores = sc.score_units(units, trials, group_size, seed=seed)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if studied is not None:
        scores = _with_polysemanticity(stimulus_set, studied, layers, scores, out_dir, seed)
    sc.write_scores(scores, out_dir / "scores.parquet", model=stimulus_set.model, observer=machine.name)
    sc.plot_scores(scores, out_dir / "scores.png", f"{machine.name} on {stimulus_set.model} units")
    return scores


def _with_polysemanticity(stimulus_set: StimulusSet, studied: nn.Module, layers: Sequence[str] | None,
                          scores: list[sc.UnitScore], out_dir: Path, seed: int) -> list[sc.UnitScore]:
    """The scores with each unit's polysemanticity; writes OUT/polysemanticity.json."""
    measured = poly.stimulus_polysemanticity(stimulus_set, studied, layers)
    scores = [replace(s, polysemanticity=measured[f"{s.layer}:{s.unit}"].score,
                      facets=measured[f"{s.layer}:{s.unit}"].facets)
              if f"{s.layer}:{s.unit}" in measured else s for s in scores]
    record = poly.polysemanticity_record(measured, scores, seed)
    atomic_write_bytes(out_dir / "polysemanticity.json", (json.dumps(record, indent=1) + "\n").encode())
    return scores


def trusted_proxies(value: str | None) -> str | None:
    """``--trusted-proxy`` checked: comma-separated IP addresses or networks (None: none)."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise PhospheneError(f"--trusted-proxy {item!r} is not an IP address or network (name the "
                                 "proxy's address, e.g. 127.0.0.1)") from None
    if not items:
        raise PhospheneError("--trusted-proxy is empty")
    return ",".join(items)


def admin_token_from(flag: str | None, path: str | None) -> tuple[str, str]:
    """(token, where it came from): --admin-token-file, else --admin-token, else the environment
    variable PHOSPHENE_ADMIN_TOKEN, else a new random one ("generated"). `PhospheneError` for an
    empty or short token."""
    if path is not None:
        try:
            lines = Path(path).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise PhospheneError(f"cannot read --admin-token-file {path}: {exc}") from None
        value, source = (lines[0] if lines else ""), "--admin-token-file"
    elif flag is not None:
        value, source = flag, "--admin-token"
    elif "PHOSPHENE_ADMIN_TOKEN" in os.environ:
        value, source = os.environ["PHOSPHENE_ADMIN_TOKEN"], "PHOSPHENE_ADMIN_TOKEN"
    else:
        return secrets.token_urlsafe(24), "generated"
    value = value.strip()
    if not value:
        raise PhospheneError(f"the admin token from {source} is empty")
    if len(value) < 16:
        raise PhospheneError(f"the admin token from {source} must have at least 16 characters")
    return value, source

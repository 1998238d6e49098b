"""``phosphene experiment``: the psychophysics matching experiment (stimuli, serve, analyze, simulate)."""

from __future__ import annotations

import json
import os
import secrets
from collections import Counter
from pathlib import Path

import click

from ..errors import PhospheneError, install_hint
from .app import main
from .common import model_options, open_model
from .options import (
    NATURALS,
    NON_NEGATIVE,
    NON_NEGATIVE_FLOAT,
    PORT,
    POSITIVE,
    SEED,
    SIDE,
    STEPS,
    UNITS_PER_LAYER,
    device_callback,
)


@main.group("experiment")
def experiment() -> None:
    """Do visualizations explain units? Klein et al.'s matching experiment, for people and machines."""


def _parse_csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _parse_counts(value: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise PhospheneError(f"cannot read images per unit {value!r}; use e.g. 1,3,5") from None
    if not counts or min(counts) < 1:
        raise PhospheneError("images per unit must be positive")
    return counts


design_options = [
    click.option("--trials-per-condition", type=POSITIVE, default=2, show_default=True,
                 help="Trials per (trial type x layer x images per unit)."),
    click.option("--images-per-unit", default="1,3,5", show_default=True),
    click.option("--catch", "catch_trials", type=NON_NEGATIVE, default=2, show_default=True,
                 help="Catch trials (obvious answer) per participant."),
    click.option("--seed", type=SEED, default=0, show_default=True),
]


def with_design(func):
    for option in reversed(design_options):
        func = option(func)
    return func


@experiment.command("stimuli")
@model_options
@click.option("--run", "run_dir", type=click.Path(file_okay=False), default=None,
              help="Mining run (`phosphene mine`) to take natural exemplars from.")
@click.option("--images", type=click.Path(file_okay=False), default=None,
              help="Image folder to rank directly (small folders; instead of --run).")
@click.option("--layers", default=None,
              help="Three layers, early,middle,late (default: middle block of each depth tertile).")
@click.option("--units-per-layer", type=UNITS_PER_LAYER, default=6, show_default=True)
@click.option("--units", default=None, help="Units per layer instead of random ones: '1,2,3;4,5,6;7,8,9'.")
@click.option("--naturals", type=NATURALS, default=10, show_default=True, help="Natural exemplars per unit.")
@click.option("--visualizations", type=POSITIVE, default=5, show_default=True,
              help="Visualizations per unit (made different by the diversity term).")
@click.option("--diversity", type=NON_NEGATIVE_FLOAT, default=10.0, show_default=True)
@click.option("--steps", type=STEPS, default=256, show_default=True)
@click.option("--viz-size", type=SIDE, default=224, show_default=True)
@click.option("--image-size", type=SIDE, default=224, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--quiet", is_flag=True)
@click.option("--out", type=click.Path(file_okay=False), required=True)
def stimuli_command(model_name, weights, device, run_dir, images, layers, units_per_layer, units,
                    naturals, visualizations, diversity, steps, viz_size, image_size, seed, quiet,
                    out) -> None:
    """Build a stimulus set: exemplars and visualizations of units of early/middle/late layers."""
    from ..psychophysics import stimuli as st

    if bool(run_dir) == bool(images):
        raise PhospheneError("give exactly one of --run (a mining run) or --images (a folder)")
    model = open_model(model_name, weights, device)
    if layers:
        depths = st.assign_depths(_parse_csv(layers))
    else:
        depths = st.run_layers(model, run_dir) if run_dir else st.depth_layers(model)
    if units:
        groups = units.split(";")
        if len(groups) != len(depths):
            raise PhospheneError(f"--units needs {len(depths)} ';'-separated lists")
        from ..objectives import parse_units

        layer_units = {layer: parse_units(g) for layer, g in zip(depths.values(), groups)}
        st.channel_counts(model, list(depths.values()))
    else:
        layer_units = st.pick_units(model, depths, units_per_layer, seed)
    progress = False if quiet else None
    if run_dir:
        exemplars = st.exemplars_from_run(run_dir, layer_units, naturals, model.name)
    else:
        exemplars = _exemplars_from_folder(model, images, layer_units, naturals, image_size, progress, out)
    settings = st.StimulusSettings(naturals, visualizations, steps, viz_size, image_size, diversity,
                                   seed=seed)
    result = st.build_stimuli(model, out, depths, layer_units, exemplars, settings, progress)
    click.echo(f"{len(result.units)} units, {len(result.image_paths())} images -> {out}")
    for depth, layer in depths.items():
        click.echo(f"  {depth:<7} {layer:<14} units {','.join(map(str, layer_units[layer]))}")
    _warn_few_units(result)


def _exemplars_from_folder(model, folder: str, layer_units, naturals: int, size: int, progress, out: str):
    """Exemplars ranked over an image folder; what could not be read is counted on stderr and
    listed in OUT/skipped.csv (as mining does)."""
    from ..psychophysics.folder_exemplars import exemplars_from_folder, write_skipped

    exemplars, skipped = exemplars_from_folder(model, folder, layer_units, naturals, size, progress)
    if skipped:
        reasons = Counter(reason.split(" (")[0] for _, reason in skipped)
        counts = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda rn: (-rn[1], rn[0])))
        listing = Path(out) / "skipped.csv"
        write_skipped(listing, skipped)
        click.echo(f"skipped {len(skipped)} files ({counts}), e.g. {skipped[0][0]}: {skipped[0][1]}; "
                   f"list in {listing}", err=True)
    return exemplars


def _warn_few_units(stimulus_set, enough: int = 6) -> None:
    """With few units per layer every trial compares the same few units (3: always the same triple),
    so an observer's accuracy is that of those units, not of units in general: it can sit far below
    1/3 (docs/psychophysics.md, "Below chance")."""
    few = {depth: len(units) for depth, units in stimulus_set.by_depth().items() if len(units) < enough}
    if few:
        counts = ", ".join(f"{d} {n}" for d, n in few.items())
        click.echo(f"warning: few units per layer ({counts}); trials keep comparing the same units, so "
                   f"accuracies describe those units only and can be far below chance; use "
                   f"--units-per-layer {enough} or more", err=True)


@experiment.command("trials")
@click.argument("stimuli", type=click.Path(file_okay=False))
@with_design
@click.option("--participant", type=NON_NEGATIVE, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the full trial list as JSON.")
def trials_command(stimuli, trials_per_condition, images_per_unit, catch_trials, seed, participant,
                   as_json) -> None:
    """Print the trial list a participant gets (reproducible from --seed and --participant)."""
    from ..psychophysics.stimuli import StimulusSet
    from ..psychophysics.trials import design, participant_seed

    trials = design(StimulusSet.load(stimuli), trials_per_condition, _parse_counts(images_per_unit),
                    catch_trials, participant_seed(seed, participant))
    if as_json:
        click.echo(json.dumps([t.to_dict() for t in trials], indent=1))
        return
    for t in trials:
        click.echo(f"{t.index:3d} {t.kind:<13} {t.depth:<6} n={t.images_per_unit} "
                   f"units {' '.join(t.units)} answer {t.answer}")


@experiment.command("serve")
@click.argument("stimuli", type=click.Path(file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=PORT, default=8000, show_default=True)
@click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None,
              help="SQLite file for responses (default: STIMULI/responses.sqlite).")
@click.option("--admin-token-file", type=click.Path(dir_okay=False), default=None,
              help="File whose first line is the token for /api/admin/*.")
@click.option("--admin-token", default=None,
              help="Token for /api/admin/* (visible in `ps`: prefer PHOSPHENE_ADMIN_TOKEN or "
                   "--admin-token-file; default: a random one, printed once).")
@click.option("--trusted-proxy", default=None, metavar="ADDR[,ADDR...]",
              help="Reverse proxy addresses (or networks) whose X-Forwarded-For is believed; "
                   "default: nobody's, the rate limits see each connection's own address.")
@click.option("--sessions-per-address", type=POSITIVE, default=100, show_default=True,
              help="New sessions one address may start per 10 minutes (a class behind one NAT "
                   "shares an address).")
@click.option("--max-open-sessions", type=POSITIVE, default=2000, show_default=True,
              help="Unfinished sessions active in the last 30 minutes beyond which new ones get 503.")
@click.option("--max-connections", type=POSITIVE, default=2048, show_default=True,
              help="Open connections; past it the longest-idle one is closed.")
@with_design
def serve_command(stimuli, host, port, db_path, admin_token_file, admin_token, trusted_proxy,
                  sessions_per_address, max_open_sessions, max_connections, trials_per_condition,
                  images_per_unit, catch_trials, seed) -> None:
    """Serve the web experiment for STIMULI; responses go to a SQLite (WAL) file.

    The admin token comes from PHOSPHENE_ADMIN_TOKEN, --admin-token-file or --admin-token;
    without any, a random one is made and printed once. Limits and what they protect:
    docs/guarantees.md.
    """
    try:
        from ..psychophysics.connections import ConnectionLimits
        from ..psychophysics.server import Limits, create_app, serve
    except ImportError as exc:
        raise PhospheneError(f"the web experiment needs {install_hint('psychophysics')}") from exc
    token, source = admin_token_from(admin_token, admin_token_file)
    if source == "--admin-token":
        click.echo("warning: --admin-token is visible to every user of this machine (`ps`); use "
                   "PHOSPHENE_ADMIN_TOKEN or --admin-token-file", err=True)
    proxies = trusted_proxies(trusted_proxy)
    db_path = db_path or str(Path(stimuli) / "responses.sqlite")
    limits = Limits(sessions_per_client=sessions_per_address, max_open_sessions=max_open_sessions)
    app = create_app(stimuli, db_path, token, trials_per_condition,
                     _parse_counts(images_per_unit), catch_trials, seed, limits=limits)
    click.echo(f"experiment on http://{host}:{port}/  (responses -> {db_path})")
    if source == "generated":
        click.echo(f"admin token (shown once, not stored): {token}")
    click.echo(f"admin: curl -H \"Authorization: Bearer $PHOSPHENE_ADMIN_TOKEN\" "
               f"http://{host}:{port}/api/admin/export.csv")
    serve(app, host, port, ConnectionLimits(max_connections=max_connections), proxies)


def trusted_proxies(value: str | None) -> str | None:
    """``--trusted-proxy`` checked: comma-separated IP addresses or networks (None: none)."""
    if value is None:
        return None
    import ipaddress

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


@experiment.command("export")
@click.argument("db_path", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="CSV file to write.")
def export_command(db_path, out) -> None:
    """Write all responses of an experiment database as CSV."""
    from ..psychophysics.analysis import load_responses, write_responses

    if not Path(db_path).is_file():
        raise PhospheneError(f"no such database: {db_path}")
    rows = load_responses(db_path)
    write_responses(rows, out)
    click.echo(f"{len(rows)} responses -> {out}")
    if Path(db_path).suffix.lower() in (".db", ".sqlite", ".sqlite3"):
        from ..psychophysics.storage import ExperimentDB

        orphaned = ExperimentDB(db_path, create=False).orphaned()
        if orphaned:
            click.echo(f"{orphaned} sessions never answered a trial (consent given, page closed, or "
                       "server restarted); they have no rows in the export")


@experiment.command("analyze")
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True)
@click.option("--title", default=None)
def analyze_command(results, out, title) -> None:
    """Accuracy per condition (Wilson 95%) from databases or CSVs: summary.csv and accuracy.png."""
    from ..psychophysics.analysis import analyze, gap_table, summary_table

    conditions = analyze(results, out, title)
    click.echo(summary_table(conditions))
    click.echo("\nnatural exemplars minus visualizations (accuracy):\n" + gap_table(conditions))
    click.echo(f"-> {out}/summary.csv, {out}/accuracy.png")


@experiment.command("simulate")
@click.argument("stimuli", type=click.Path(file_okay=False))
@click.option("--observer", default="efficientnet_lite1", show_default=True,
              help="Model that plays the participant (not the studied one).")
@click.option("--feature-layer", default="_relu1", show_default=True,
              help="Observer layer whose pooled activations are the features.")
@click.option("--size", type=SIDE, default=None, help="Observer input side (default: its own).")
@click.option("--participants", type=POSITIVE, default=10, show_default=True,
              help="Virtual participants (each the design a human participant would get).")
@with_design
@click.option("--device", default=None, callback=device_callback)
@click.option("--quiet", is_flag=True)
@click.option("--out", type=click.Path(file_okay=False), required=True)
def simulate_command(stimuli, observer, feature_layer, size, participants, trials_per_condition,
                     images_per_unit, catch_trials, seed, device, quiet, out) -> None:
    """Solve the trials with a machine observer; writes responses.csv, summary.csv, accuracy.png."""
    from ..models.device import pick_device
    from ..psychophysics.analysis import (
        gap_table,
        plot,
        summarize,
        summary_table,
        write_responses,
        write_summary,
    )
    from ..psychophysics.observer import MachineObserver, simulate
    from ..psychophysics.stimuli import StimulusSet

    stimulus_set = StimulusSet.load(stimuli)
    _warn_few_units(stimulus_set)
    if observer == stimulus_set.model:
        click.echo(f"warning: the observer is the studied model ({observer})", err=True)
    machine = MachineObserver(observer, feature_layer, size, pick_device(device))
    rows = simulate(stimulus_set, machine, participants, trials_per_condition,
                    _parse_counts(images_per_unit), catch_trials, seed,
                    progress=False if quiet else None)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_responses(rows, out_dir / "responses.csv")
    conditions = summarize(rows)
    write_summary(conditions, out_dir / "summary.csv")
    plot(conditions, out_dir / "accuracy.png", f"{machine.name} on {stimulus_set.model} units")
    click.echo(summary_table(conditions))
    click.echo("\nnatural exemplars minus visualizations (accuracy):\n" + gap_table(conditions))
    click.echo(f"-> {out_dir}/responses.csv, summary.csv, accuracy.png")


@experiment.command("score")
@click.argument("source", type=click.Path(file_okay=False))
@click.option("--layers", default=None,
              help="Layers to score. For a mining run: three, early,middle,late (default: as "
                   "`experiment stimuli --run`); for a stimulus set: any of its layers (default: all).")
@click.option("--trials", type=POSITIVE, default=200, show_default=True, help="2-AFC trials per unit.")
@click.option("--group", "group_size", type=POSITIVE, default=3, show_default=True,
              help="Images in the query and in each candidate group.")
@click.option("--observer", default="efficientnet_lite1", show_default=True)
@click.option("--feature-layer", default="_relu1", show_default=True)
@click.option("--units-per-layer", type=UNITS_PER_LAYER, default=8, show_default=True,
              help="Mining run only: random units per layer.")
@click.option("--naturals", type=NATURALS, default=10, show_default=True, help="Mining run only.")
@click.option("--visualizations", type=POSITIVE, default=5, show_default=True, help="Mining run only.")
@click.option("--steps", type=STEPS, default=128, show_default=True, help="Mining run only: render steps.")
@click.option("--viz-size", type=SIDE, default=128, show_default=True, help="Mining run only.")
@click.option("--image-size", type=SIDE, default=128, show_default=True, help="Mining run only.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@model_options
@click.option("--quiet", is_flag=True)
@click.option("--out", type=click.Path(file_okay=False), required=True)
def score_command(source, layers, trials, group_size, observer, feature_layer, units_per_layer,
                  naturals, visualizations, steps, viz_size, image_size, seed, model_name, weights,
                  device, quiet, out) -> None:
    """Per-unit machine interpretability score of SOURCE (a mining run or a stimulus set).

    Writes scores.parquet (one row per unit and query kind), scores.png and prints the per-layer
    distribution. From a mining run it first builds a stimulus set in OUT/stimuli.
    """
    from ..models.device import pick_device
    from ..psychophysics import score as sc
    from ..psychophysics.observer import MachineObserver
    from ..psychophysics.stimuli import StimulusSet

    if trials < 1 or group_size < 1:
        raise PhospheneError("--trials and --group must be at least 1")
    progress = False if quiet else None
    out_dir = Path(out)
    if _is_stimulus_set(source):
        stimulus_set = StimulusSet.load(source)
        chosen = _parse_csv(layers)
    else:
        stimulus_set = _stimuli_from_run(source, layers, units_per_layer, naturals, visualizations,
                                         steps, viz_size, image_size, seed, model_name, weights, device,
                                         out_dir / "stimuli", progress)
        chosen = None
    machine = MachineObserver(observer, feature_layer, None, pick_device(device))
    units = sc.stimulus_features(stimulus_set, machine, chosen, progress)
    scores = sc.score_units(units, trials, group_size, seed=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    sc.write_scores(scores, out_dir / "scores.parquet", model=stimulus_set.model, observer=machine.name)
    sc.plot_scores(scores, out_dir / "scores.png", f"{machine.name} on {stimulus_set.model} units")
    click.echo(sc.summary_text(sc.layer_summary(scores)))
    click.echo(f"-> {out_dir}/scores.parquet, scores.png")


def _is_stimulus_set(path: str) -> bool:
    """A stimulus folder's manifest.json lists units (a mining run's has its own manifest)."""
    manifest = Path(path) / "manifest.json"
    try:
        return manifest.is_file() and "units" in json.loads(manifest.read_text())
    except ValueError:
        return False


def _stimuli_from_run(run, layers, units_per_layer, naturals, visualizations, steps, viz_size,
                      image_size, seed, model_name, weights, device, out, progress):
    """A stimulus set built from a mining run (as `experiment stimuli --run` does)."""
    from ..psychophysics import stimuli as st

    model = open_model(model_name, weights, device)
    depths = st.assign_depths(_parse_csv(layers)) if layers else st.run_layers(model, run)
    layer_units = st.pick_units(model, depths, units_per_layer, seed)
    exemplars = st.exemplars_from_run(run, layer_units, naturals, model.name)
    settings = st.StimulusSettings(naturals, visualizations, steps, viz_size, image_size, seed=seed)
    return st.build_stimuli(model, out, depths, layer_units, exemplars, settings, progress)


__all__ = ["experiment"]

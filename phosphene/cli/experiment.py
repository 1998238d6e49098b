"""``phosphene experiment``: the psychophysics matching experiment (stimuli, serve, analyze, simulate)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import PhospheneError, install_hint
from ..models.device import pick_device
from ..objectives import parse_units
from ..psychophysics.analysis import analyze, gap_table, load_responses, summary_table, write_responses
from ..psychophysics.observer import MachineObserver
from ..psychophysics.pipeline import (
    TrialDesign,
    UnitChoice,
    admin_token_from,
    few_units_warning,
    is_stimulus_set,
    make_stimuli,
    score_source,
    simulate_experiment,
    skipped_note,
    trusted_proxies,
)
from ..psychophysics.polysemanticity import RESAMPLES
from ..psychophysics.score import layer_summary, summary_text
from ..psychophysics.stimuli import StimulusSet, StimulusSettings
from ..psychophysics.storage import ExperimentDB
from ..psychophysics.trials import design, participant_seed
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
    quality_option,
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
@quality_option("experiment stimuli")
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
    model = open_model(model_name, weights, device)
    choice = UnitChoice(_parse_csv(layers), [parse_units(g) for g in units.split(";")] if units else None,
                        units_per_layer, seed)
    settings = StimulusSettings(naturals, visualizations, steps, viz_size, image_size, diversity, seed=seed)
    result, depths, layer_units = make_stimuli(model, out, settings, choice, run_dir, images,
                                               progress=False if quiet else None)
    click.echo(f"{len(result.units)} units, {len(result.image_paths())} images -> {out}")
    for depth, layer in depths.items():
        click.echo(f"  {depth:<7} {layer:<14} units {','.join(map(str, layer_units[layer]))}")
    note = skipped_note(out) if images else None
    if note:
        click.echo(note, err=True)
    _warn_few_units(result)


def _warn_few_units(stimulus_set: StimulusSet) -> None:
    warning = few_units_warning(stimulus_set)
    if warning:
        click.echo(f"warning: {warning}", err=True)


@experiment.command("trials")
@click.argument("stimuli", type=click.Path(file_okay=False))
@with_design
@click.option("--participant", type=NON_NEGATIVE, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the full trial list as JSON.")
def trials_command(stimuli, trials_per_condition, images_per_unit, catch_trials, seed, participant,
                   as_json) -> None:
    """Print the trial list a participant gets (reproducible from --seed and --participant)."""
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
        from ..psychophysics.server import ConnectionLimits, Limits, create_app, serve
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


@experiment.command("export")
@click.argument("db_path", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="CSV file to write.")
def export_command(db_path, out) -> None:
    """Write all responses of an experiment database as CSV."""
    if not Path(db_path).is_file():
        raise PhospheneError(f"no such database: {db_path}")
    rows = load_responses(db_path)
    write_responses(rows, out)
    click.echo(f"{len(rows)} responses -> {out}")
    if Path(db_path).suffix.lower() in (".db", ".sqlite", ".sqlite3"):
        orphaned = ExperimentDB(db_path, create=False).orphaned()
        if orphaned:
            click.echo(f"{orphaned} sessions never answered a trial (consent given, page closed, or "
                       "server restarted); they have no rows in the export")


@experiment.command("analyze")
@click.argument("results", nargs=-1, required=True)
@click.option("--out", type=click.Path(file_okay=False), required=True)
@click.option("--title", default=None)
def analyze_command(results, out, title) -> None:
    """Accuracy per condition (Wilson 95%) from databases or CSVs: summary.csv and accuracy.png.

    A RESULTS argument LABEL=PATH shows that file as the source LABEL (e.g. units=a.csv
    atoms=b.csv: one observer on two stimulus sets, side by side)."""
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
    stimulus_set = StimulusSet.load(stimuli)
    _warn_few_units(stimulus_set)
    if observer == stimulus_set.model:
        click.echo(f"warning: the observer is the studied model ({observer})", err=True)
    machine = MachineObserver(observer, feature_layer, size, pick_device(device))
    trial_design = TrialDesign(trials_per_condition, _parse_counts(images_per_unit), catch_trials, seed)
    conditions = simulate_experiment(stimulus_set, machine, participants, trial_design, out,
                                     progress=False if quiet else None)
    click.echo(summary_table(conditions))
    click.echo("\nnatural exemplars minus visualizations (accuracy):\n" + gap_table(conditions))
    click.echo(f"-> {Path(out)}/responses.csv, summary.csv, accuracy.png")


@experiment.command("score")
@quality_option("experiment score")
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
@click.option("--polysemanticity/--no-polysemanticity", default=True, show_default=True,
              help="Also each unit's polysemanticity (from its natural exemplars through the studied "
                   "model) and its correlation with the score (polysemanticity.json).")
@model_options
@click.option("--quiet", is_flag=True)
@click.option("--out", type=click.Path(file_okay=False), required=True)
def score_command(source, layers, trials, group_size, observer, feature_layer, units_per_layer,
                  naturals, visualizations, steps, viz_size, image_size, seed, polysemanticity, model_name,
                  weights, device, quiet, out) -> None:
    """Per-unit machine interpretability score of SOURCE (a mining run or a stimulus set).

    Writes scores.parquet (one row per unit and query kind), scores.png and prints the per-layer
    distribution. From a mining run it first builds a stimulus set in OUT/stimuli.
    """
    progress, studied = False if quiet else None, None
    if is_stimulus_set(source):
        stimulus_set, chosen = StimulusSet.load(source), _parse_csv(layers)
        if polysemanticity and stimulus_set.settings.get("demo"):
            click.echo("note: a demo stimulus set has no model: no polysemanticity", err=True)
            polysemanticity = False
        if polysemanticity:
            studied = open_model(stimulus_set.model, weights, device)
    else:
        settings = StimulusSettings(naturals, visualizations, steps, viz_size, image_size, seed=seed)
        choice = UnitChoice(_parse_csv(layers), None, units_per_layer, seed)
        studied = open_model(model_name, weights, device)
        stimulus_set, _, _ = make_stimuli(studied, Path(out) / "stimuli", settings, choice, run=source,
                                          progress=progress)
        chosen, studied = None, studied if polysemanticity else None
    machine = MachineObserver(observer, feature_layer, None, pick_device(device))
    scores = score_source(stimulus_set, machine, out, chosen, trials, group_size, seed, progress, studied)
    click.echo(summary_text(layer_summary(scores)))
    if studied is not None:
        _echo_polysemanticity(Path(out) / "polysemanticity.json")
    click.echo(f"-> {Path(out)}/scores.parquet, scores.png" + (", polysemanticity.json" if studied else ""))


def _echo_polysemanticity(path: Path) -> None:
    """The per-unit polysemanticity and its correlation with the score, from polysemanticity.json."""
    record = json.loads(path.read_text())
    click.echo("\npolysemanticity (effective facets of the natural exemplars) per unit:")
    click.echo("  " + "  ".join(f"{unit} {p['score']:.2f}" for unit, p in record["units"].items()))
    for measure, per_query in record["correlation_with_unit_score"].items():
        name = "polysemanticity" if measure == "score" else measure
        for query, c in per_query.items():
            if c is None:
                click.echo(f"  {name} vs {query} score: fewer than 4 units")
                continue
            click.echo(f"  {name} vs {query} score: Spearman ρ {c['spearman']:+.2f} (n {c['n']}; 95 % "
                       f"bootstrap [{c['bootstrap_95'][0]:+.2f}, {c['bootstrap_95'][1]:+.2f}], Fisher "
                       f"[{c['fisher_95'][0]:+.2f}, {c['fisher_95'][1]:+.2f}])")
            if c["resamples"] < 0.95 * RESAMPLES:
                click.echo(f"    (bootstrap from {c['resamples']} of {RESAMPLES} resamples, the others had a "
                           "constant variable: it is conditioned on them, prefer Fisher's interval)")


__all__ = ["admin_token_from", "experiment"]

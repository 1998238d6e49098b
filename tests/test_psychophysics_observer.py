"""The machine observer on the real model and the sample images (small settings): the whole
pipeline mining run -> stimuli -> trials -> EfficientNet-Lite1 observer -> per-condition accuracy.
These tests check the pipeline, not the scientific conclusion."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from click.testing import CliRunner

import phosphene
from phosphene.cli.app import main
from phosphene.errors import PhospheneError
from phosphene.io.images import list_images
from phosphene.psychophysics import analysis
from phosphene.psychophysics import folder_exemplars as fe
from phosphene.psychophysics import stimuli as st
from phosphene.psychophysics.observer import MachineObserver, simulate
from phosphene.psychophysics.storage import RESPONSE_COLUMNS

DESIGN = {"trials_per_condition": 2, "images_per_unit": (1, 3), "catch_trials": 2}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mining_run(samples_dir, model, tmp_path_factory):
    from phosphene.mining import run_mining

    folder = tmp_path_factory.mktemp("images")
    for path in list_images(samples_dir)[::5]:  # 100 images, every class group
        (folder / path.name).symlink_to(path)
    out = tmp_path_factory.mktemp("run")
    run_mining(model, ["_blocks.2", "_blocks.7", "_blocks.13"], folder, out, k=16, batch_size=50,
               num_workers=0, size=96, progress=False)
    return out


@pytest.fixture(scope="module")
def stimulus_dir(mining_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("stimuli")
    result = CliRunner().invoke(main, [
        "experiment", "stimuli", "--run", str(mining_run), "--units-per-layer", "3", "--naturals", "6",
        "--visualizations", "3", "--steps", "12", "--viz-size", "64", "--image-size", "64",
        "--quiet", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def observer():
    return MachineObserver("efficientnet_lite1", size=96, device="cpu")


def test_stimuli_from_a_mining_run_hold_exemplars_and_visualizations(stimulus_dir, mining_run):
    stimuli = st.StimulusSet.load(stimulus_dir)
    assert [u.depth for u in stimuli.units] == ["early"] * 3 + ["middle"] * 3 + ["late"] * 3
    assert {u.layer for u in stimuli.units} == {"_blocks.2", "_blocks.7", "_blocks.13"}
    run = phosphene.mining.open(mining_run)
    for unit in stimuli.units:
        assert len(unit.natural) == 6 and len(unit.visualizations) == 3
        assert unit.natural_values == sorted(unit.natural_values, reverse=True)
        top = [str(e.path) for e in run.top(unit.layer, unit.unit, 16)]
        assert all(source in top for source in unit.natural_sources)
    for depth, units in stimuli.by_depth().items():
        sources = [s for u in units for s in u.natural_sources]
        assert len(sources) == len(set(sources)), depth  # no image shared by units of a layer
    assert (stimulus_dir / "overview.png").is_file()
    manifest = json.loads((stimulus_dir / "manifest.json").read_text())
    assert manifest["model"] == "efficientnet_lite0" and manifest["settings"]["steps"] == 12


def test_machine_observer_gives_accuracy_per_condition(stimulus_dir, observer, tmp_path):
    stimuli = st.StimulusSet.load(stimulus_dir)
    rows = simulate(stimuli, observer, participants=2, **DESIGN, progress=False)
    assert len(rows) == 2 * (2 * 3 * 2 * 2 + 2)
    assert all(set(r) == set(RESPONSE_COLUMNS) for r in rows)
    assert {r["source"] for r in rows} == {"machine:efficientnet_lite1"}
    conditions = analysis.summarize(rows)
    main_conditions = [c for c in conditions if c.kind != "catch"]
    assert {(c.kind, c.depth, c.images_per_unit) for c in main_conditions} == {
        (k, d, n) for k in ("exemplar", "visualization") for d in st.DEPTHS for n in (1, 3)}
    assert all(c.items == 3 * 2 * 2 and 0 <= c.low <= c.accuracy <= c.high <= 1 for c in main_conditions)
    catch = [c for c in conditions if c.kind == "catch"]
    assert sum(c.correct for c in catch) == sum(c.items for c in catch)  # identical images: matched
    analysis.write_responses(rows, tmp_path / "machine.csv")
    again = analysis.summarize(analysis.load_responses(tmp_path / "machine.csv"))
    assert [c.to_dict() for c in again] == [c.to_dict() for c in conditions]


def test_observer_embeddings_are_unit_norm_and_deterministic(stimulus_dir, observer):
    stimuli = st.StimulusSet.load(stimulus_dir)
    paths = [stimuli.root / p for p in stimuli.units[0].natural[:3]]
    first = observer.embed(paths)
    assert first.shape == (3, 1280)
    assert torch.allclose(first.norm(dim=1), torch.ones(3), atol=1e-5)
    fresh = MachineObserver(observer.model, size=96)
    assert torch.allclose(fresh.embed(paths), first, atol=1e-5)


def test_cli_simulate_writes_responses_summary_and_plot(stimulus_dir, tmp_path):
    out = tmp_path / "sim"
    result = CliRunner().invoke(main, [
        "experiment", "simulate", str(stimulus_dir), "--size", "96", "--participants", "1",
        "--images-per-unit", "1,3", "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "| machine:efficientnet_lite1 | visualization | late | 3 |" in result.output
    assert "warning: few units per layer (early 3, middle 3, late 3)" in result.output
    with (out / "summary.csv").open() as handle:
        summary = list(csv.DictReader(handle))
    assert len([r for r in summary if r["kind"] != "catch"]) == 2 * 3 * 2
    assert all(0 <= float(r["accuracy"]) <= 1 for r in summary)
    assert (out / "accuracy.png").read_bytes()[:4] == b"\x89PNG"


def test_stimuli_from_an_image_folder_without_a_mining_run(model, samples_dir):
    paths = list_images(samples_dir)[::10]
    layer_units = {"_blocks.2": [0, 1, 2]}
    exemplars = fe.exemplars_from_images(model, paths, layer_units, k=4, size=64, progress=False)
    means = fe.unit_means(model, paths, layer_units, size=64)["_blocks.2"]
    best = str(paths[int(means[:, 0].argmax())])
    assert exemplars[("_blocks.2", 0)][0][0] == best
    assert all(len(v) == 4 for v in exemplars.values())


def test_a_run_of_another_model_or_layer_is_refused(mining_run):
    with pytest.raises(PhospheneError, match="made with efficientnet_lite0"):
        st.exemplars_from_run(mining_run, {"_blocks.2": [0, 1, 2]}, 4, model_name="efficientnet_lite1")
    with pytest.raises(PhospheneError, match="no layer _blocks.5"):
        st.exemplars_from_run(mining_run, {"_blocks.5": [0, 1, 2]}, 4)


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_observer_models_load_strictly_and_classify_samples(name, samples_dir, sample_labels):
    net = phosphene.load_model(name, device="cpu")
    paths = list_images(samples_dir)[::50]
    images = torch.stack([phosphene.load_image(p, net.input_size) for p in paths])
    with torch.no_grad():
        predicted = net(images).argmax(1).tolist()
    truth = [sample_labels[p.name.split("_")[0]] for p in paths]
    assert sum(p == t for p, t in zip(predicted, truth)) >= 8  # of 10

"""Facets of a unit: k-means of its top exemplars, one visualization per facet (`render --facets`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from test_mining import sample_subset

from phosphene import mining
from phosphene.cli.app import main
from phosphene.errors import PhospheneError
from phosphene.facets import find_facets, pooled_vectors, render_facets

LAYER, UNIT = "_blocks.4", 5


@pytest.fixture(scope="module")
def run(model, samples_dir, tmp_path_factory):
    images = sample_subset(samples_dir, tmp_path_factory.mktemp("facets") / "images", 16, step=29)
    return mining.run_mining(model, [LAYER], images, tmp_path_factory.mktemp("facets") / "run", k=8,
                             batch_size=16, num_workers=0, size=64, progress=False)


def test_pooled_vectors_weight_positions_by_the_units_map(model):
    images = torch.rand(2, 3, 64, 64)
    same_layer = pooled_vectors(model, images, LAYER, UNIT, LAYER)
    assert same_layer.shape == (2, 40)
    # at its own layer, the unit's entry of its pooled vector is its map weighted by itself
    from phosphene.layers.tap import LayerTap
    with torch.no_grad(), LayerTap(model, [LAYER]) as tap:
        raw = tap(images)[LAYER][:, UNIT]
    a = raw.clamp_min(0)
    # where the unit is silent everywhere, every position weighs the same
    expected = torch.where(a.sum((-2, -1)) > 0, (a * raw).sum((-2, -1)) / a.sum((-2, -1)).clamp_min(1e-12),
                           raw.mean((-2, -1)))
    np.testing.assert_allclose(same_layer[:, UNIT].numpy(), expected.numpy(), rtol=1e-4)


def test_facets_split_the_exemplars_and_facet_zero_holds_the_best(model, run):
    facets = find_facets(model, run, LAYER, UNIT, n=3)
    assert sorted(set(facets.labels.tolist())) == [0, 1, 2] and len(facets.examples) == 8
    assert facets.directions.shape == (3, 40)
    assert facets.labels[int(np.argmax(facets.values))] == 0
    assert sum(len(facets.members(i)) for i in range(3)) == 8
    with pytest.raises(PhospheneError, match="at least 9 exemplars"):
        find_facets(model, run, LAYER, UNIT, n=9)


def test_render_facets_makes_one_image_per_facet(model, run):
    result = render_facets(model, run, LAYER, UNIT, n=2, steps=3, size=48, progress=False)
    assert result.render.images.shape == (2, 3, 48, 48) and result.unit_values.shape == (2,)
    assert result.settings["facets"] == 2 and result.settings["facet_layer"] == LAYER


def test_cli_writes_the_sheet_and_json_and_rejects_bad_input(run, tmp_path):
    args = ["render", "--layer", LAYER, "--channels", str(UNIT), "--steps", "2", "--size", "48", "--quiet"]
    facets = ["--facets", "2", "--run", str(run.root)]
    result = CliRunner().invoke(main, [*args, *facets, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "facets.json").read_text())
    assert [row["facet"] for row in record["per_facet"]] == [0, 1]
    assert sum(len(row["exemplars"]) for row in record["per_facet"]) == 8
    assert Image.open(tmp_path / "facets.png").width > 48 * 5
    for extra, message in ((["--facets", "2"], "needs --run"),
                           (["--facets", "2", "--run", str(run.root), "--channels", "1,2"], "one unit")):
        bad = CliRunner().invoke(main, [*args, *extra, "--out", str(tmp_path / "x")])
        assert bad.exit_code == 2 and message in bad.output, bad.output


def _two_sided(channels: int) -> torch.Tensor:
    """8 exemplars sharing one dominant direction (the unit's own channel, 100) and split by the sign
    of channel 1; one exemplar of each side deviates 30 times more than the others."""
    generator = torch.Generator().manual_seed(0)
    vectors = 0.01 * torch.randn(8, channels, generator=generator, dtype=torch.float64)
    vectors[:, UNIT] += 100
    vectors[:, 1] += torch.tensor([1, 1, 1, 30, -1, -1, -1, -30], dtype=torch.float64)
    return vectors


def test_facets_cluster_centred_vectors_and_leave_the_units_channel_out(model, run, monkeypatch):
    # on raw vectors normalized to unit length, k-means puts one far exemplar alone; centred and
    # then normalized, the two sides of channel 1 are the two facets
    monkeypatch.setattr("phosphene.facets.pooled_vectors", lambda *args: _two_sided(40))
    facets = find_facets(model, run, LAYER, UNIT, n=2)
    sides = (_two_sided(40)[:, 1] > 0).numpy()
    assert (facets.labels == facets.labels[0]).tolist() == sides.tolist()
    assert torch.all(facets.directions[:, UNIT] == 0)  # not toward more of the unit
    assert torch.all(facets.directions[:, 1].abs() > 5)
    other = find_facets(model, run, LAYER, UNIT, n=2, facet_layer="_blocks.3")  # another layer keeps it
    assert torch.all(facets.directions[:, 1] == other.directions[:, 1])


def test_facet_directions_of_real_exemplars_have_no_unit_component(model, run):
    facets = find_facets(model, run, LAYER, UNIT, n=3)
    assert torch.all(facets.directions[:, UNIT] == 0) and torch.all(facets.directions.norm(dim=1) > 0)


def test_facet_objective_is_the_unit_plus_the_plain_projection(model, run, monkeypatch):
    from phosphene.render import render as real_render
    captured = {}

    def fake_render(model, objective, **options):
        captured["objective"] = objective
        return real_render(model, objective, **options)

    monkeypatch.setattr("phosphene.facets.render", fake_render)
    result = render_facets(model, run, LAYER, UNIT, n=2, weight=0.5, steps=1, size=48, progress=False)
    acts = torch.randn(2, 40, 6, 6)
    value = captured["objective"]({LAYER: acts})
    d = torch.nn.functional.normalize(result.facets.directions, dim=1)
    expected = acts[:, UNIT].mean((-2, -1)) + 0.5 * (acts * d[:, :, None, None]).sum(1).mean((-2, -1))
    torch.testing.assert_close(value, expected)  # no cosine factor: <a, d> as it is

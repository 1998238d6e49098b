"""Negative units, random directions, class probabilities, and (aligned) interpolation between units."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import phosphene
from phosphene import interaction
from phosphene import objectives as obj
from phosphene.cli import main
from phosphene.errors import PhospheneError
from phosphene.objectives import Acts
from phosphene.param import blur_param_, blurrable
from phosphene.param.aligned import AlignedFrames
from phosphene.regularizers import high_frequency_share
from phosphene.transforms import standard_transforms


def acts_of(values: torch.Tensor, layer: str = "layer") -> Acts:
    return Acts({layer: values})


def test_a_leading_minus_negates_a_unit_and_is_refused_as_a_unit():
    act = torch.arange(2 * 4 * 2 * 2, dtype=torch.float32).view(2, 4, 2, 2)
    positive, negative = phosphene.unit("layer:3"), phosphene.unit("-layer:3")
    assert torch.equal(negative(acts_of(act)), -positive(acts_of(act)))
    assert negative.label(0) == "-layer:3"
    with pytest.raises(PhospheneError, match="negative objective"):
        phosphene.parse_unit("-layer:3")


def test_interpolate_weights_the_two_objectives_per_frame():
    act = torch.rand(4 * 3, 2, 3, 3)  # 4 frames x 3 views
    a, b = obj.channel("layer", 0), obj.channel("layer", 1)
    mixed = obj.interpolate(a, b, 4)
    assert mixed.batch_size == 4 and mixed.label(0) == "layer:0" and mixed.label(3) == "layer:1"
    values = mixed(Acts({"layer": act}, copies=3))
    t = torch.tensor([0, 1 / 3, 2 / 3, 1]).repeat_interleave(3)
    assert torch.allclose(values, (1 - t) * act[:, 0].mean((1, 2)) + t * act[:, 1].mean((1, 2)))
    with pytest.raises(PhospheneError, match="at least 2 frames"):
        obj.interpolate(a, b, 1)


def test_random_directions_are_seeded_unit_directions():
    act = torch.randn(3, 8, 2, 2)
    first = interaction.random_directions("layer", 3, seed=5)
    again = interaction.random_directions("layer", 3, seed=5)
    other = interaction.random_directions("layer", 3, seed=6)
    assert first.batch_size == 3 and first.label(2) == "layer:random2"
    assert torch.equal(first(acts_of(act)), again(acts_of(act)))
    assert not torch.equal(first(acts_of(act)), other(acts_of(act)))
    vectors = torch.randn(3, 8, generator=torch.Generator().manual_seed(5))
    expected = obj.direction("layer", vectors)(acts_of(act))
    assert torch.allclose(first(acts_of(act)), expected)


def test_frame_alignment_is_lucids_penalty_spread_over_the_frames():
    act = torch.randn(5, 2, 3, 3)
    values = interaction.frame_alignment("layer", decay_ratio=2.0, reach=4)(acts_of(act))
    lucid = sum(((act[i] - act[i + d]) ** 2).mean() / 2.0 ** d
                for d in range(1, 5) for i in range(5 - d))
    assert values.sum().item() == pytest.approx(lucid.item(), rel=1e-5)
    same = interaction.frame_alignment("layer")(acts_of(act[:1].expand(5, -1, -1, -1)))
    assert same.abs().max().item() == 0.0


def test_shared_draws_warp_every_image_alike():
    draws = interaction.SharedDraws(standard_transforms())
    image = torch.rand(1, 3, 32, 32)
    views = draws(image.expand(3, -1, -1, -1), torch.Generator().manual_seed(0), copies=2)
    assert views.shape[0] == 6
    assert torch.allclose(views[0], views[2], atol=0.1) and torch.allclose(views[1], views[3], atol=0.1)
    assert not torch.allclose(views[0], views[1], atol=0.1)  # the two views of one image differ


def test_aligned_frames_share_their_coarse_layout():
    frames = AlignedFrames(4, 32, sd=0.5, generator=torch.Generator().manual_seed(0))
    images = frames()
    assert images.shape == (4, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    images.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in frames.parameters())
    assert blurrable(frames)
    blur_param_(frames, 1.5)
    assert (high_frequency_share(frames().detach()) < high_frequency_share(images.detach())).all()
    with torch.no_grad():
        frames.unique.spectrum.zero_()
        shared = frames()
    assert interaction.neighbour_distance(shared) < 0.5 * interaction.neighbour_distance(images)


@pytest.fixture(scope="module")
def strips(model, one_thread):
    """Single-unit renders and interpolation strips of two units of _blocks.4, 32 px, 24 steps."""
    torch.manual_seed(0)
    options = dict(steps=24, size=32, progress=False)
    a, b = "_blocks.4:3", "_blocks.4:7"
    singles = [phosphene.render(model, u, param="fourier", **options).final.item() for u in (a, b)]
    plain = interaction.render_interpolation(model, a, b, 4, aligned=False, **options)
    aligned = interaction.render_interpolation(model, a, b, 4, aligned=True, **options)
    return singles, plain, aligned


def test_interpolation_end_frames_reach_the_single_unit_objectives(strips):
    singles, plain, aligned = strips
    for result in (plain, aligned):
        assert result.images.shape == (4, 3, 32, 32)
        assert result.final[0].item() == pytest.approx(singles[0], rel=0.25)
        assert result.final[-1].item() == pytest.approx(singles[1], rel=0.25)
    assert aligned.settings["objective"].startswith("interpolate(")
    assert "frame_alignment" in aligned.settings["penalty"]


def test_aligned_neighbours_are_closer_than_unaligned(strips):
    _, plain, aligned = strips
    assert interaction.neighbour_distance(aligned.images) < 0.8 * interaction.neighbour_distance(plain.images)


def test_cli_objective_options(tmp_path):
    runner = CliRunner()
    common = ["--steps", "2", "--size", "32", "--quiet", "--out", str(tmp_path / "o")]
    result = runner.invoke(main, ["render", "--unit", "_blocks.4:3", "--unit", "-_blocks.4:3", *common])
    assert result.exit_code == 0, result.output
    labels = [u["label"] for u in json.loads((tmp_path / "o" / "render.json").read_text())["units"]]
    assert labels == ["_blocks.4:3", "-_blocks.4:3"]
    result = runner.invoke(main, ["render", "--layer", "_blocks.4", "--channels", "1", "--negative", *common])
    assert result.exit_code == 0 and "-_blocks.4:1" in result.output
    result = runner.invoke(main, ["render", "--layer", "_blocks.4", "--random-directions", "2", *common])
    assert result.exit_code == 0 and "_blocks.4:random1" in result.output
    result = runner.invoke(main, ["render", "--classes", "1", "--class-prob", *common])
    settings = json.loads((tmp_path / "o" / "render.json").read_text())["settings"]
    assert result.exit_code == 0 and settings["objective"] == "prob(1)"
    for bad, message in ((["--class-prob", "--layer", "_blocks.4", "--channels", "1"], "needs --classes"),
                         (["--unit", "-_blocks.4:1", "--layer", "_blocks.4", "--channels", "1"], "give one"),
                         (["--random-directions", "2"], "needs --layer")):
        result = runner.invoke(main, ["render", *bad, *common])
        assert result.exit_code == 2 and message in result.output, result.output


def test_cli_interpolate_writes_the_strip(tmp_path):
    out = tmp_path / "strip"
    result = CliRunner().invoke(main, ["render", "--interpolate", "_blocks.4:3@2,2,-_blocks.4:3", "--frames",
                                       "3", "--steps", "2", "--size", "32", "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "interpolation.json").read_text())
    assert record["a"] == "_blocks.4:3@2,2" and record["b"] == "-_blocks.4:3" and record["aligned"]
    assert len(record["objective_per_frame"]) == 3 and (out / "strip.png").is_file()
    bad = CliRunner().invoke(main, ["render", "--interpolate", "_blocks.4:3", "--out", str(out)])
    assert bad.exit_code == 2 and "two units" in bad.output
    bad = CliRunner().invoke(main, ["render", "--interpolate", "_blocks.4:3,_blocks.4:4", "--layer",
                                    "_blocks.4", "--channels", "1", "--out", str(out)])
    assert bad.exit_code == 2 and "--interpolate takes its units" in bad.output

"""One unit vocabulary: "layer:channel", "layer:channel@y,x", `Unit` and objectives are interchangeable."""

from __future__ import annotations

import pytest
import torch

import phosphene
from phosphene import objectives as obj
from phosphene.accentuation.circuits import unit_attribution
from phosphene.attribution import Target, attribute, parse_target
from phosphene.errors import PhospheneError
from phosphene.units import Unit, as_unit, parse_unit, unit


def test_unit_strings_parse_to_channels_and_positions():
    assert parse_unit("_blocks.8._relu1:3") == Unit("_blocks.8._relu1", 3)
    assert parse_unit("_blocks.8:5@2,7") == Unit("_blocks.8", 5, (2, 7))
    centre = parse_unit("_blocks.8:5", position="centre", preactivation=False)
    assert centre == Unit("_blocks.8", 5, "centre", False)
    assert str(Unit("_blocks.8", 5, (2, 7))) == "_blocks.8:5@2,7"
    for bad in ("_blocks.8", ":3", "_blocks.8:x", "_blocks.8:3@1"):
        with pytest.raises(PhospheneError, match="LAYER:CHANNEL"):
            parse_unit(bad)


def test_target_is_the_old_name_of_unit():
    assert Target is Unit and parse_target("a:1") == Unit("a", 1)


def test_string_units_make_the_matching_objectives(model):
    x = torch.rand(2, 3, 64, 64)
    with phosphene.LayerTap(model, ["_blocks.6"]) as tap, torch.no_grad():
        acts = obj.Acts(tap(x))
        assert torch.equal(unit("_blocks.6:4")(acts), obj.channel("_blocks.6", 4)(acts))
        assert torch.equal(unit("_blocks.6:4@1,2")(acts), acts["_blocks.6"][:, 4, 1, 2])
        assert torch.equal(unit("_blocks.6:4", position="centre")(acts), obj.neuron("_blocks.6", 4)(acts))


def test_objectives_of_one_unit_name_it():
    assert as_unit(obj.channel("l", 3)) == Unit("l", 3, "mean", True)
    assert as_unit(obj.neuron("l", 3, x=1, y=2)) == Unit("l", 3, (2, 1), True)
    assert as_unit(unit("l:3@0,0", preactivation=False)).preactivation is False
    with pytest.raises(PhospheneError, match="not a single unit"):
        as_unit(obj.channel("l", [1, 2]))
    with pytest.raises(PhospheneError, match="not a single unit"):
        as_unit(obj.deepdream("l"))


def test_objective_unit_is_always_a_unit_or_none():
    assert obj.channel("l", 3).unit == Unit("l", 3, "mean")
    assert obj.neuron("l", 3).unit == Unit("l", 3, "centre")
    assert obj.neuron("l", 3, x=1, y=2).unit == Unit("l", 3, (2, 1))
    assert unit("l:3@cls").unit == Unit("l#cls", 3)
    assert obj.channel("l", [1, 2]).unit is None and obj.class_logit(1).unit is None


def test_render_accepts_a_unit_string(model):
    a = phosphene.render(model, "_blocks.3:2", steps=2, size=32, progress=False)
    b = phosphene.render(model, obj.channel("_blocks.3", 2), steps=2, size=32, progress=False)
    assert torch.equal(a.images, b.images) and a.labels == ["_blocks.3:2"]


def test_attribution_takes_a_string_a_unit_or_an_objective(model, sample_batch):
    images = sample_batch[0][:3]
    by_string = attribute(model, images, "_blocks.8:3", ["_blocks.6"])
    by_unit = attribute(model, images, Unit("_blocks.8", 3), ["_blocks.6"])
    by_objective = attribute(model, images, obj.channel("_blocks.8", 3), ["_blocks.6"])
    assert torch.equal(by_string.f, by_unit.f)
    assert torch.allclose(by_objective.f, by_unit.f, atol=1e-5)
    total = by_unit.layers["_blocks.6"].total
    assert torch.allclose(by_objective.layers["_blocks.6"].total, total, atol=1e-4)


def test_circuit_attribution_is_the_attribution_modules_vector(model, sample_batch):
    images = sample_batch[0][:2]
    objective = obj.class_logit(1)
    vector = unit_attribution(model, objective, "_blocks.10", images)
    again = attribute(model, images, objective, ["_blocks.10"], keep=True).layers["_blocks.10"].vector
    x = images.clone().requires_grad_(True)
    with phosphene.LayerTap(model, ["_blocks.10", "logits"]) as tap:
        acts = tap(x)
        (grad,) = torch.autograd.grad(acts["logits"][:, 1].sum(), acts["_blocks.10"])
    reference = (acts["_blocks.10"].detach() * grad).sum((2, 3))
    assert torch.allclose(vector, again) and torch.allclose(vector, reference, rtol=1e-4, atol=1e-4)

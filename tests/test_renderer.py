"""The step-level `Renderer` under `render`: step API, thresholds, optimizer=, callable objectives."""

from __future__ import annotations

import json

import pytest
import torch

import phosphene
from phosphene import objectives as obj
from phosphene.errors import PhospheneError
from phosphene.render import RenderConfig, Renderer


@pytest.fixture()
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3), torch.nn.ReLU(), torch.nn.Conv2d(6, 4, 3))


def test_stepping_by_hand_gives_the_same_images_as_render(net):
    config = RenderConfig(steps=5, size=24, seed=3)
    with Renderer(net, obj.channel("2", [0, 1, 2]), config=config) as renderer:
        values = [renderer.step() for _ in range(5)]
        stepped = renderer.result()
    whole = phosphene.render(net, obj.channel("2", [0, 1, 2]), steps=5, size=24, seed=3, progress=False)
    assert all(v.shape == (3,) for v in values)
    assert torch.equal(stepped.images, whole.images) and torch.equal(stepped.history, whole.history)
    assert torch.equal(stepped.history[2], values[2])


def test_renderer_restores_the_model_when_closed(net):
    net.train()
    with Renderer(net, obj.channel("0", 1), config=RenderConfig(steps=1, size=16)) as renderer:
        assert not net.training
        renderer.step()
    assert net.training and all(p.requires_grad for p in net.parameters())


def test_thresholds_keep_the_images_of_those_steps(net, tmp_path):
    result = phosphene.render(net, obj.channel("2", [0, 1]), steps=4, size=20, thresholds=(1, 4),
                              progress=False)
    assert sorted(result.snapshots) == [1, 4]
    assert result.snapshots[1].shape == (2, 3, 20, 20)
    assert torch.equal(result.snapshots[4], result.images)
    assert not torch.equal(result.snapshots[1], result.snapshots[4])
    record = result.save(tmp_path)
    assert record["thresholds"]["1"] == ["unit_000_step1.png", "unit_001_step1.png"]
    assert (tmp_path / "unit_001_step4.png").is_file()
    assert json.loads((tmp_path / "render.json").read_text())["settings"]["thresholds"] == [1, 4]


def test_thresholds_outside_the_steps_are_rejected(net):
    with pytest.raises(PhospheneError, match="thresholds"):
        phosphene.render(net, obj.channel("2", 0), steps=3, size=16, thresholds=(5,), progress=False)


def test_optimizer_factory_is_used_and_recorded(net):
    made = []

    def sgd(params):
        made.append(torch.optim.SGD(params, lr=0.5))
        return made[-1]

    adam = phosphene.render(net, obj.channel("2", 1), steps=3, size=16, progress=False)
    plain = phosphene.render(net, obj.channel("2", 1), steps=3, size=16, optimizer=sgd, progress=False)
    assert len(made) == 1 and plain.settings["optimizer"] == "SGD"
    assert adam.settings["optimizer"] == "Adam"
    assert not torch.equal(adam.images, plain.images)


def test_a_plain_callable_of_the_images_is_an_objective(net):
    calls = []

    def redness(images: torch.Tensor) -> torch.Tensor:
        calls.append(images.shape)
        return images[:, 0].mean((1, 2)) - images[:, 1:].mean((1, 2, 3))

    result = phosphene.render(net, redness, steps=12, size=16, batch=2, lr=0.2, transforms="none",
                              progress=False)
    assert result.settings["objective"] == "redness" and result.settings["stop_layer"] is None
    assert result.final.shape == (2,) and (result.history[-1] > result.history[0]).all()
    assert calls[0] == (2, 3, 16, 16)  # the images themselves: the renderer does not run the model
    red = result.images[:, 0].mean() - result.images[:, 1:].mean()
    assert result.history[0].abs().max() < 0.02 and red > 0.05  # grey at the start, red at the end


def test_callable_objective_can_run_the_model_itself(model):
    result = phosphene.render(model, lambda images: model(images)[:, 1], steps=3, size=32, progress=False)
    with torch.no_grad():
        assert torch.allclose(result.final, model(result.images)[:, 1], atol=1e-4)


def test_settings_come_from_the_config(net):
    result = phosphene.render(net, obj.channel("2", 1), steps=2, size=16, seed=5, copies=2,
                              progress=False)
    config = RenderConfig(steps=2, size=16, batch=1, seed=5, copies=2).record()
    assert config["channels_last"] is None
    config["channels_last"] = True  # recorded as resolved: channels-last on the CPU
    assert {k: result.settings[k] for k in config} == config

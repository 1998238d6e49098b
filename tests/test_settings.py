"""Settings objects: a config plus keyword overrides of its fields, checked against the config."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import phosphene
from phosphene import AccentuationConfig, RenderConfig
from phosphene import objectives as obj
from phosphene.distributed.executor import RayOptions
from phosphene.errors import PhospheneError
from phosphene.mining import MiningPlan, run_mining


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3), torch.nn.ReLU(), torch.nn.Conv2d(6, 4, 3))


def test_render_keywords_are_config_fields(net):
    by_config = phosphene.render(net, obj.channel("2", [0, 1]), RenderConfig(steps=3, size=24, seed=5),
                                 progress=False)
    by_keywords = phosphene.render(net, obj.channel("2", [0, 1]), steps=3, size=24, seed=5, progress=False)
    overridden = phosphene.render(net, obj.channel("2", [0, 1]), RenderConfig(steps=3, size=24, seed=1),
                                  seed=5, progress=False)
    assert torch.equal(by_config.images, by_keywords.images)
    assert torch.equal(by_config.history, overridden.history)
    assert by_keywords.settings["seed"] == 5 and by_keywords.settings["thresholds"] == []


def test_an_unknown_render_setting_names_the_close_match(net):
    with pytest.raises(PhospheneError, match="unknown setting 'stpes'; did you mean steps"):
        phosphene.render(net, obj.channel("2", 0), stpes=3)
    with pytest.raises(PhospheneError, match="config must be a RenderConfig"):
        phosphene.render(net, obj.channel("2", 0), "pixel")


def test_accentuation_settings_come_as_a_config_keywords_or_a_reg_layer_string(net):
    seeds = torch.rand(1, 3, 24, 24)
    config = AccentuationConfig(reg_layer="0", lam=[0, 1], steps=2, crops=2, input_size=24, seed=3)
    by_config = phosphene.accentuate(net, obj.channel("2", 1), seeds, config, progress=False)
    by_keywords = phosphene.accentuate(net, obj.channel("2", 1), seeds, reg_layer="0", lam=[0, 1],
                                       steps=2, crops=2, input_size=24, seed=3, progress=False)
    by_string = phosphene.accentuate(net, obj.channel("2", 1), seeds, "0", lam=[0, 1], steps=2, crops=2,
                                     input_size=24, seed=3, progress=False)
    assert torch.equal(by_config.images, by_keywords.images)
    assert torch.equal(by_config.f_history, by_string.f_history)
    assert by_config.settings["lams"] == [0.0, 1.0] and by_config.settings["reg_layer"] == "0"


def test_bad_accentuation_settings_fail_when_the_config_is_made():
    with pytest.raises(PhospheneError, match="lambdas must be finite"):
        AccentuationConfig(lam=[-1.0])
    with pytest.raises(PhospheneError, match="unknown balance"):
        AccentuationConfig(balance_by="pixels")
    with pytest.raises(PhospheneError, match="did you mean lam"):
        phosphene.accentuate(torch.nn.Conv2d(3, 3, 1), obj.channel("input", 0), torch.rand(1, 3, 8, 8),
                             lamb=1.0)


def test_mining_plan_carries_the_mining_settings(net, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray((torch.rand(20, 20, 3) * 255).byte().numpy()).save(folder / f"{i}.png")
    model = phosphene.load_model(net, device="cpu")
    plan = MiningPlan(k=2, batch_size=2, num_workers=0, size=16)
    run = run_mining(model, ["0"], folder, tmp_path / "run", plan, progress=False)
    assert run.k == 2 and run.manifest["config"]["batch_size"] == 2
    with pytest.raises(PhospheneError, match="did you mean batch_size"):
        run_mining(model, ["0"], folder, tmp_path / "other", batchsize=2)


def test_ray_options_without_an_address_run_here():
    with RayOptions().executor() as executor:
        assert executor is None

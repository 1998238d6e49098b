"""render(): the optimization loop on the real model."""

from __future__ import annotations

import torch

import phosphene
from phosphene import objectives as obj


def test_renders_beat_the_best_natural_image_for_middle_layer_channels(model, sample_forward):
    channels = list(range(8))
    result = phosphene.render(model, obj.channel("_blocks.8", channels), steps=32, size=96,
                              progress=False)
    dataset_max = sample_forward["_blocks.8"][:, channels].amax(0)
    with phosphene.LayerTap(model, ["_blocks.8"]) as tap, torch.no_grad():
        clean = tap(result.images)["_blocks.8"][:, channels].diagonal().mean((0, 1))
    beaten = int((clean > dataset_max).sum())
    assert beaten >= 4, (clean, dataset_max)
    assert torch.allclose(result.final, clean, rtol=1e-4, atol=1e-4)


def test_result_holds_images_history_final_and_transparency(model):
    result = phosphene.render(model, obj.channel("_blocks.4", [1, 2, 3]), steps=6, size=64,
                              progress=False)
    assert result.images.shape == (3, 3, 64, 64)
    assert result.images.min() >= 0 and result.images.max() <= 1
    assert result.history.shape == (6, 3) and result.final.shape == (3,)
    assert result.transparency.shape == (3, 1, 64, 64)
    assert result.transparency.min() >= 0 and result.transparency.max() == 1
    assert result.labels == ["_blocks.4:1", "_blocks.4:2", "_blocks.4:3"]
    assert result.settings["stop_layer"] == "_blocks.4"


def test_objective_rises_during_optimization(model):
    result = phosphene.render(model, obj.channel("_blocks.6", [5, 9]), steps=20, size=64,
                              progress=False)
    assert (result.history[-3:].mean(0) > result.history[:3].mean(0) + 1).all()


def test_same_seed_same_images_on_cpu(model):
    kwargs = dict(steps=4, size=48, progress=False, seed=7)
    a = phosphene.render(model, obj.channel("_blocks.3", [0, 1]), **kwargs)
    b = phosphene.render(model, obj.channel("_blocks.3", [0, 1]), **kwargs)
    c = phosphene.render(model, obj.channel("_blocks.3", [0, 1]), **{**kwargs, "seed": 8})
    assert torch.equal(a.images, b.images) and torch.equal(a.history, b.history)
    assert not torch.equal(a.images, c.images)


def test_truncation_does_not_change_the_result(model):
    kwargs = dict(steps=3, size=48, progress=False, seed=1)
    cut = phosphene.render(model, obj.channel("_blocks.5", [2, 4]), **kwargs)
    full = phosphene.render(model, obj.channel("_blocks.5", [2, 4]), truncate=False, **kwargs)
    assert torch.allclose(cut.images, full.images, atol=1e-6)


def test_class_logit_with_diversity_and_copies(model):
    objective = obj.class_logit([1, 1]) + 0.1 * obj.diversity("_blocks.10")
    result = phosphene.render(model, objective, steps=8, size=64, copies=2, param="maco",
                              progress=False)
    assert result.images.shape == (2, 3, 64, 64) and result.settings["stop_layer"] is None
    assert not torch.equal(result.images[0], result.images[1])
    assert result.history.shape == (8, 2)


def test_every_parameterization_and_transform_set_runs(model):
    for param in ("fourier", "pixel", "maco"):
        for transforms in ("standard", "crops", "none"):
            result = phosphene.render(model, obj.neuron("_blocks.2", 3), steps=2, size=48,
                                      param=param, transforms=transforms, progress=False)
            assert torch.isfinite(result.final).all()


def test_render_leaves_a_trainable_model_as_it_was():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    net.train()
    phosphene.render(net, obj.channel("0", [0, 1]), steps=2, size=16, progress=False)
    assert net.training and all(p.requires_grad for p in net.parameters())


def test_save_writes_pngs_grid_and_json(model, tmp_path):
    import json

    result = phosphene.render(model, obj.channel("_blocks.4", [0, 7]), steps=2, size=32,
                              progress=False)
    record = result.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["grid.png", "render.json"] + [u["file"] for u in record["units"]])
    saved = json.loads((tmp_path / "render.json").read_text())
    assert saved["settings"]["steps"] == 2 and len(saved["units"]) == 2
    assert abs(saved["units"][1]["final_objective"] - float(result.final[1])) < 1e-5


def test_amp_renders_in_bfloat16_and_returns_float_images(model):
    result = phosphene.render(model, obj.channel("_blocks.4", [0, 1]), steps=3, size=48, amp=True,
                              progress=False)
    assert result.images.dtype == torch.float32 and torch.isfinite(result.final).all()
    assert result.settings["amp"] is True

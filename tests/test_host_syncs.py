"""No host synchronisation per step in the optimizing loops (render, accentuate in both crop styles,
bf16): counted on the CPU with `host_syncs.count_syncs` after a warm-up; on a GPU with torch's sync
debug mode."""

from __future__ import annotations

import pytest
import torch
from host_syncs import count_syncs

import phosphene
from phosphene import objectives as obj
from phosphene.accentuation import accentuate
from phosphene.render import RenderConfig, Renderer

SEEDS = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("transforms,precision", [("standard", "fp32"), ("crops", "fp32"),
                                                  ("standard", "bf16")])
def test_render_steps_make_no_host_syncs(model, transforms, precision):
    objective = obj.channel("_blocks.2", [0, 1]) + 0.1 * obj.diversity("_blocks.2")
    config = RenderConfig(steps=5, size=32, precision=precision)
    with Renderer(model, objective, transforms=transforms, config=config) as renderer:
        renderer.step()  # warm-up: lazily made grids and buffers
        with count_syncs() as counts:
            for _ in range(3):
                renderer.step()
        assert not counts, dict(counts)
        with count_syncs() as at_the_end:
            renderer.result()
    assert at_the_end, "the counter sees the reads of the result (it can fail)"


@pytest.mark.parametrize("style", ["faccent", "phosphene"])
def test_accentuate_steps_make_no_host_syncs(model, monkeypatch, style):
    """The loop's steps after the first (the transparency gradient in one of them) make no sync."""
    counted, plain_step = [], Renderer.step

    def counted_step(self):
        if not counted:  # the first step warms up
            counted.append(None)
            return plain_step(self)
        with count_syncs() as counts:
            values = plain_step(self)
        counted.append(dict(counts))
        return values

    monkeypatch.setattr(Renderer, "step", counted_step)
    accentuate(model, obj.channel("_blocks.4", 1), SEEDS, "_blocks.2", steps=4, crops=2, measure_crops=1,
               input_size=32, style=style, transparency_every=2, progress=False)
    assert counted[1:] == [{}, {}, {}], counted


def test_counter_catches_a_sync_in_a_step(model):
    inner = obj.channel("_blocks.2", [0])

    def reads_a_value(acts):
        values = inner(acts)
        float(values.sum())  # what a per-step log line would do
        return values

    with Renderer(model, obj.Objective(reads_a_value, inner.layers, "reads", 1),
                  config=RenderConfig(steps=3, size=32)) as renderer:
        renderer.step()
        with count_syncs() as counts:
            renderer.step()
    assert sum(counts.values()) == 1 and "_local_scalar_dense" in next(iter(counts))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("style", ["faccent", "phosphene"])
def test_accentuate_steps_make_no_cuda_syncs(style):
    """On a GPU, torch's sync debug mode raises on any synchronizing call during the loop's steps."""
    gpu = phosphene.load_model("efficientnet_lite0", device="cuda")
    inner = obj.channel("_blocks.4", 1)
    calls = []

    def strict(acts):
        calls.append(1)
        torch.cuda.set_sync_debug_mode("error" if torch.is_grad_enabled() and len(calls) > 2 else "default")
        return inner(acts)

    try:
        objective = obj.Objective(strict, inner.layers, "strict", 1)
        result = accentuate(gpu, objective, SEEDS.cuda(), "_blocks.2", steps=4, crops=2,
                            measure_crops=2, input_size=64, style=style, progress=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert result.f_history.shape == (4, 1)

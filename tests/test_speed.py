"""The fast paths of the loop: broadcast sampling grid, no host syncs per step, compile fallback."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

import phosphene
from phosphene import objectives as obj
from phosphene.layers import compiling
from phosphene.layers.tap import StopForward
from phosphene.transforms import sampling_grid, standard_transforms


@pytest.mark.parametrize("size,out", [(48, 60), (224, 236), (236, 224), (17, 17)])
def test_broadcast_grid_equals_affine_grid(size, out):
    maps = standard_transforms().sample(5, size, torch.Generator().manual_seed(size))
    theta = maps[:, :2, :].clone()
    theta[:, :, :2] *= out / size
    theta[:, :, 2] /= size / 2
    reference = F.affine_grid(theta, [5, 3, out, out], align_corners=False)
    assert torch.allclose(sampling_grid(maps, size, out), reference, atol=1e-6)


SYNCS = ("item", "tolist", "__bool__", "__float__", "__int__", "numpy", "nonzero")


def count_phosphene_syncs(monkeypatch) -> dict[str, int]:
    """Patch the Tensor methods that copy a value to the host; count calls made from phosphene."""
    counts = {name: 0 for name in SYNCS}
    for name in SYNCS:
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, _name=name, _original=original, **kwargs):
            if sys._getframe(1).f_globals.get("__name__", "").startswith("phosphene"):
                counts[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    return counts


@pytest.mark.parametrize("transforms", ["standard", "none", "crops"])
def test_render_loop_makes_no_host_syncs(model, monkeypatch, transforms):
    objective = obj.channel("_blocks.2", [0, 1]) + 0.1 * obj.diversity("_blocks.2")
    # warm-up: the model's one-time checks (batch layout) run at its first render in the process
    phosphene.render(model, objective, steps=1, size=32, transforms=transforms, progress=False)
    counts = count_phosphene_syncs(monkeypatch)
    totals = []
    for steps in (1, 4):
        before = sum(counts.values())
        phosphene.render(model, objective, steps=steps, size=32, transforms=transforms, progress=False)
        totals.append(sum(counts.values()) - before)
    assert totals[1] == totals[0], counts  # three more steps, not one more sync


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_render_steps_make_no_cuda_syncs(model):
    """On a GPU, torch's sync debug mode raises on any synchronizing call during steps 2..N."""
    inner = obj.channel("_blocks.4", [0, 1, 2])

    def strict(acts):
        torch.cuda.set_sync_debug_mode("error" if torch.is_grad_enabled() else "default")
        return inner(acts)

    gpu_model = phosphene.load_model("efficientnet_lite0", device="cuda")
    try:
        result = phosphene.render(gpu_model, obj.Objective(strict, inner.layers, "strict", 3),
                                  steps=4, size=64, progress=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert result.history.shape == (4, 3)


def test_compile_failure_falls_back_to_eager_with_one_warning(model, monkeypatch):
    def broken(fn, **options):
        def run(*args, **kwargs):
            raise RuntimeError("inductor: no working C++ compiler\nlong traceback")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    objective = obj.channel("_blocks.3", [0, 1])
    kwargs = dict(steps=3, size=32, progress=False, seed=2)
    with pytest.warns(RuntimeWarning, match=r"torch.compile failed \(RuntimeError: inductor: no "
                                            r"working C\+\+ compiler\); running eagerly") as record:
        compiled = phosphene.render(model, objective, compile=True, **kwargs)
    assert len(record) == 1 and compiled.settings["compile"]
    eager = phosphene.render(model, objective, **kwargs)
    assert torch.equal(compiled.images, eager.images)


def test_compiled_function_passes_control_flow_exceptions_through(monkeypatch):
    def stop(x):
        raise StopForward

    monkeypatch.setattr(torch, "compile", lambda fn, **options: fn)
    wrapped = compiling.compiled(stop)
    with pytest.raises(StopForward):
        wrapped(1)
    assert wrapped.failed is None


def test_cli_render_no_fold_and_compile_options(tmp_path, monkeypatch):
    import json

    from click.testing import CliRunner

    from phosphene.cli.app import main

    monkeypatch.setattr(torch, "compile", lambda fn, **options: fn)
    out = tmp_path / "out"
    args = ["render", "--layer", "_blocks.2", "--channels", "0-1", "--steps", "2", "--size", "32",
            "--no-fold", "--compile", "--contiguous", "--quiet", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    settings = json.loads((out / "render.json").read_text())["settings"]
    assert settings["fold"] is False and settings["compile"] is True
    assert settings["channels_last"] is False
    for verb in ("accentuate", "mine"):
        assert "--no-fold" in CliRunner().invoke(main, [verb, "--help"]).output


def test_channels_last_is_the_cpu_default_and_matches_contiguous(model):
    """Channels-last (the CPU default) changes memory order only: same objective values, and the
    model's weights are handed back in their original layout."""
    weights = [p for p in model.parameters() if p.dim() == 4]
    strides = [p.stride() for p in weights]
    assert all(p.is_contiguous() for p in weights)
    runs = {flag: phosphene.render(model, obj.channel("_blocks.2", [0, 1]), steps=3, size=48,
                                   progress=False, channels_last=flag) for flag in (None, False)}
    assert runs[None].settings["channels_last"] is True
    assert runs[False].settings["channels_last"] is False
    # The first objective values agree to round-off. Adam's first steps are sign-like (g/|g|), so
    # where a gradient is near zero the round-off of the two memory orders picks the step's sign:
    # later values and pixels agree closely on average, not pixel for pixel.
    assert torch.allclose(runs[None].history[0], runs[False].history[0], rtol=1e-4, atol=1e-4)
    assert torch.allclose(runs[None].history, runs[False].history, rtol=2e-3, atol=1e-2)
    assert (runs[None].images - runs[False].images).abs().mean() < 1e-2
    assert [p.stride() for p in weights] == strides

"""``precision`` (fp32 / bf16 / fp16) and ``compile`` on the optimizing verbs (render, accentuate,
invert): autocast of the model's forward, float32 image parameters, fp16's loss scaler on CUDA and its
one-line error elsewhere."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import phosphene
from phosphene import objectives as obj
from phosphene.accentuation import accentuate
from phosphene.cli.app import main
from phosphene.errors import PhospheneError
from phosphene.inhibition.inversion import invert
from phosphene.layers.precision import Precision, resolve_precision
from phosphene.render import RenderConfig, Renderer

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_precision_names_and_the_amp_alias():
    assert resolve_precision("fp32", amp=True) == "bf16"
    assert resolve_precision("fp16", amp=True) == "fp16"
    with pytest.raises(PhospheneError, match="unknown precision 'bf61'.*did you mean bf16"):
        RenderConfig(precision="bf61")
    with pytest.raises(PhospheneError, match="fp16 needs a CUDA device.*use bf16 or fp32"):
        Precision("fp16", torch.device("cpu"))


def test_bf16_runs_the_model_in_bfloat16_with_float32_parameters(model):
    seen = []
    inner = obj.channel("_blocks.4", [0, 1])

    def spy(acts):
        seen.append(acts["_blocks.4"].dtype)
        return inner(acts)

    with Renderer(model, obj.Objective(spy, inner.layers, "spy", 2),
                  config=RenderConfig(steps=2, size=32, precision="bf16")) as renderer:
        renderer.step()
        assert all(p.dtype == torch.float32 for p in renderer.param.parameters())
        result = renderer.result()
    assert seen[0] == torch.bfloat16 and result.settings["precision"] == "bf16"
    assert result.images.dtype == torch.float32 and torch.isfinite(result.final).all()
    fp32 = phosphene.render(model, inner, steps=1, size=32, progress=False)
    assert fp32.settings["precision"] == "fp32"


def test_accentuate_and_invert_take_precision(model):
    seeds = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    result = accentuate(model, obj.channel("_blocks.4", 1), seeds, "_blocks.2", steps=1, crops=1,
                        measure_crops=1, input_size=32, precision="bf16", progress=False)
    assert result.settings["precision"] == "bf16" and torch.isfinite(result.f_after).all()
    with pytest.raises(PhospheneError, match="fp16 needs a CUDA device"):
        accentuate(model, obj.channel("_blocks.4", 1), seeds, "_blocks.2", steps=1, crops=1,
                   precision="fp16", progress=False)
    with pytest.raises(PhospheneError, match="invert\\(\\) got an unknown setting 'precison'"):
        invert(model, seeds[0], "_blocks.4:1", "_blocks.2", steps=1, precison="bf16")


def test_cli_precision_option_and_cpu_fp16_error(tmp_path):
    out = tmp_path / "out"
    args = ["render", "--layer", "_blocks.2", "--channels", "0", "--steps", "1", "--size", "32",
            "--precision", "bf16", "--quiet", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "render.json").read_text())["settings"]["precision"] == "bf16"
    fp16 = CliRunner().invoke(main, [*args[:9], "--precision", "fp16", "--device", "cpu", "--quiet",
                                     "--out", str(tmp_path / "fp16")])
    assert fp16.exit_code == 2 and "fp16 needs a CUDA device" in fp16.output
    assert "Traceback" not in fp16.output
    for verb in ("accentuate", "invert"):
        help_text = CliRunner().invoke(main, [verb, "--help"]).output
        assert "--precision" in help_text and "--compile" in help_text


@CUDA
def test_fp16_on_cuda_scales_the_loss_and_keeps_float32_parameters():
    gpu = phosphene.load_model("efficientnet_lite0", device="cuda")
    objective = obj.channel("_blocks.4", [0, 1])
    with Renderer(gpu, objective, config=RenderConfig(steps=8, size=64, precision="fp16")) as renderer:
        for _ in range(8):
            renderer.step()
        assert renderer.precision.scaler is not None
        assert all(p.dtype == torch.float32 for p in renderer.param.parameters())
        result = renderer.result()
    assert torch.isfinite(result.images).all() and torch.isfinite(result.transparency).all()
    assert result.history[-1].mean() > result.history[0].mean()

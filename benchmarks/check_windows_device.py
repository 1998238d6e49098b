"""Issue 28 on a GPU: windowed layers, refusals and per-image independence on the device's kernels.

The recording pass compares image a's rows between two batches ([a, b], [a, c]) to refuse layers that
mix images; GPU kernels (cuDNN autotuning, TF32, atomics) may differ in round-off between passes, and
must not make an ordinary layer look mixed. For each tiny model of ``tests/tiny_models.py`` this prints
how many layers are read per image, partitioned and refused on the device, checks that the refusals
are the same as on the CPU, that image 0's objective and gradient do not move when image 1 changes,
and that one render step runs. Exit code 1 on any difference.

    python benchmarks/check_windows_device.py            # CUDA when present, else the CPU
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import tiny_models as tm  # noqa: E402

import phosphene  # noqa: E402
from phosphene import objectives as obj  # noqa: E402
from phosphene.layers.recording import recorded_pass  # noqa: E402
from phosphene.models.input_shape import fixed_input_size  # noqa: E402

CASES = [("swin", "layers.1.blocks.1.attn"), ("mobilevit", "stages.3.1.transformer.0"),
         ("maxvit", "stages.0.blocks.0.attn_grid.attn"), ("levit", "stages.1.blocks.0"),
         ("efficientformer", "stages.3.blocks.1"), ("hf_vit", "vit.layers.1"),
         ("tv_swin", "features.1.0.attn")]


def image_zero(model, layer: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    with phosphene.LayerTap(model, [layer]) as tap:
        values = obj.channel(layer, [0, 1])(obj.Acts(tap(x)))
    (grad,) = torch.autograd.grad(values[0], x)
    return values.detach(), grad


def check(name: str, layer: str, device: torch.device) -> bool:
    model = getattr(tm, name)()
    side = fixed_input_size(model) or model.input_size
    x = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(0))
    cpu = recorded_pass(model, x, cache=False)
    model = model.to(device)
    on = recorded_pass(model, x.to(device), cache=False)
    values, grad = image_zero(model, layer, x.to(device))
    other = x.clone()
    other[1] = torch.rand(3, side, side, generator=torch.Generator().manual_seed(9))
    values2, grad2 = image_zero(model, layer, other.to(device))
    independent = (grad[1].abs().max() == 0 and torch.allclose(values[0], values2[0], atol=1e-5)
                   and torch.allclose(grad[0], grad2[0], atol=1e-5))
    result = phosphene.render(model, obj.channel(layer, [0, 1]), steps=1, progress=False)
    same = set(cpu.refused) == set(on.refused) and set(cpu.batch.partitions) == set(on.batch.partitions)
    ok = same and bool(independent) and bool(torch.isfinite(result.final).all())
    print(f"{name:16} {len(on.batch.rows):4} layers {len(on.batch.partitions):3} partitioned "
          f"{len(on.refused):3} refused  same as CPU: {same}  image 0 independent: {bool(independent)}  "
          f"{'ok' if ok else 'FAILED'}")
    if not same:
        print("  refused only on the device:", sorted(set(on.refused) - set(cpu.refused))[:5])
        print("  refused only on the CPU:", sorted(set(cpu.refused) - set(on.refused))[:5])
    return ok


def main() -> int:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device: {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'no GPU'})")
    results = [check(name, layer, device) for name, layer in CASES]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())

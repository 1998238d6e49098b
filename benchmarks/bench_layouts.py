"""Layouts benchmark (issue 10): what the canonical views cost per step, paired rounds.

    /work/venv-tv/bin/python benchmarks/bench_layouts.py --original /tmp/orig

One step = forward of a (batch, 3, 224, 224) batch through a truncated `LayerTap`, then backward of
one channel's mean to the input. Variants, interleaved round by round (order alternating):

  new       this checkout's `LayerTap`
  orig      ``--original DIR``: a copy of the phosphene package of commit 9a1a0ab (before layouts),
            imported as ``phosphene_orig``: its `LayerTap` on the same model (CNN only: on a ViT it
            reads tokens as channels)
  bare      a plain forward hook that keeps the raw output and stops the pass (no views)

Models: EfficientNet-Lite0 (``_blocks.12``, NCHW: the view is the output itself) and, with timm
installed, a random-weight timm ``vit_small_patch16_224`` (``blocks.6``, NLC: patch grid view
plus the concatenation that puts it back into the graph). Ratios are medians of per-round ratios.
The first call (recorded pass included) is timed once per variant.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import phosphene  # noqa: E402


class _Stop(Exception):
    pass


class BareTap:
    """The raw output of one layer, the forward pass stopped after it."""

    def __init__(self, model, layer):
        self.layer, self.acts = layer, {}
        self.handle = phosphene.resolve_layer(model, layer).register_forward_hook(self._hook)
        self.model = model

    def _hook(self, _m, _i, out):
        self.acts[self.layer] = out.permute(0, 2, 1) if out.dim() == 3 else out
        raise _Stop

    def __call__(self, x):
        try:
            self.model(x)
        except _Stop:
            pass
        return self.acts

    def close(self):
        self.handle.remove()


def step(tap, x0, layer):
    x = x0.clone().requires_grad_(True)
    tap(x)[layer][:, 0].mean().backward()


def bench(model, layer, makers, rounds, batch):
    x0 = torch.rand(batch, 3, 224, 224)
    times = {name: [] for name in makers}
    for name, make in makers.items():
        tap = make(model, [layer])
        start = time.perf_counter()
        step(tap, x0, layer)
        print(f"  {name}: first call {time.perf_counter() - start:.3f} s")
        tap.close()
    for r in range(rounds):
        for name in (list(makers) if r % 2 else list(makers)[::-1]):
            tap = makers[name](model, [layer])
            step(tap, x0, layer)
            start = time.perf_counter()
            step(tap, x0, layer)
            times[name].append(time.perf_counter() - start)
            tap.close()
    for name, values in times.items():
        print(f"  {name}: median step {statistics.median(values):.4f} s")
    for name in makers:
        if name != "new":
            ratio = statistics.median(n / o for n, o in zip(times["new"], times[name]))
            print(f"  new / {name}: {ratio:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", default=None, help="folder holding phosphene_orig")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    makers = {"new": phosphene.LayerTap, "bare": lambda m, layers: BareTap(m, layers[0])}
    cnn = dict(makers)
    if args.original:
        sys.path.insert(0, args.original)
        import phosphene_orig.hooks as orig_hooks

        orig_hooks.layer_root = phosphene.models.wrapper.layer_root  # the same ImageModel class
        cnn["orig"] = orig_hooks.LayerTap
    lite0 = phosphene.load_model("efficientnet_lite0").eval().requires_grad_(False)
    print(f"Lite0 _blocks.12, batch {args.batch}, 224 px, {args.threads} thread(s)")
    bench(lite0, "_blocks.12", cnn, args.rounds, args.batch)
    try:
        import timm
    except ImportError:
        return
    torch.manual_seed(0)
    vit = phosphene.ImageModel(timm.create_model("vit_small_patch16_224", pretrained=False).eval())
    vit.requires_grad_(False)
    print(f"timm vit_small_patch16_224 blocks.6, batch {args.batch}, 224 px")
    bench(vit, "blocks.6", makers, args.rounds, args.batch)


if __name__ == "__main__":
    main()

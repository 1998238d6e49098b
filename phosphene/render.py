"""The optimization loop: ``render(model, objective)`` makes images that maximize an objective.

One step: the parameterization makes the images, each is repeated ``copies`` times and randomly
transformed in one warp, the model runs only as deep as the objective reads (`LayerTap`), the
objective gives one value per image, and the optimizer (Adam by default) ascends their sum. The loop
does no host-device synchronisation: the objective history stays on the device until the end.

`render` is the one-call API; `Renderer` is the same loop driven step by step::

    with Renderer(model, obj.channel("_blocks.8", 3), config=RenderConfig(steps=64)) as r:
        for _ in range(64):
            values = r.step()  # (N,) objective per image, on the device
        result = r.result()
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import PhospheneError
from .io.captions import GRID_NOTE, name_classes
from .io.display import Rich, Section, Tile, View, line_plot, tiles
from .io.images import atomic_write_bytes, image_grid, save_image
from .io.progress import progress_bar
from .layers.compiling import compiled
from .layers.folding import fold_batchnorm
from .layers.heap import heap_kept
from .layers.model_state import frozen, memory_format, resolve_channels_last
from .layers.names import INPUT
from .layers.precision import Precision, check_precision, resolve_precision
from .layers.tap import LayerTap
from .models.input_shape import fit_side
from .models.outputs import with_output
from .models.wrapper import as_image_model
from .objectives import IMAGE, Acts, Objective, evaluate
from .param import blur_param_, blurrable, make_param
from .settings import with_overrides
from .transforms import Compose, ending_at, make_transforms
from .units import unit

__all__ = ["RenderConfig", "RenderResult", "Renderer", "render"]

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


@dataclass
class RenderConfig:
    """The loop's settings (all recorded in ``RenderResult.settings`` and ``render.json``); `render`
    takes one, and any of its fields as keywords."""

    steps: int = 256  # optimizer steps
    lr: float = 0.05  # learning rate of the default Adam
    size: int | None = None  # image side (default: the model's input size)
    batch: int | None = None  # images (default: the objective's unit count, else 1)
    seed: int = 0  # RNG seed of the initial image and every random draw; CPU renders are deterministic
    copies: int = 1  # transformed views of each image per step (averaged in the objective)
    amp: bool = False  # the older switch for precision="bf16"
    precision: str = "fp32"  # the model's forward: "fp32", "bf16" or "fp16" autocast (`layers.precision`)
    truncate: bool = True  # stop the forward pass after the deepest layer the objective reads
    channels_last: bool | None = None  # None: channels-last on the CPU (faster), contiguous elsewhere
    thresholds: tuple[int, ...] = ()  # steps after which the images are kept (`RenderResult.snapshots`)
    fold: bool = True  # fold eval BatchNorm that no objective reads into its convolution (`fold_batchnorm`)
    compile: bool = False  # torch.compile the truncated forward (eager, with a warning, if it fails)
    layouts: dict[str, str] | None = None  # layout overrides {layer: "NHWC"} (docs/models.md, Layouts)
    blur_every: int = 0  # blur the image every N steps (frequency penalization; 0: never)
    blur_sigma: float = 0.5  # that blur's Gaussian std in pixels (`phosphene.param.blur`)

    def __post_init__(self) -> None:
        self.thresholds = tuple(int(t) for t in self.thresholds)
        if self.blur_every < 0 or self.blur_sigma < 0:
            raise PhospheneError("blur_every and blur_sigma must not be negative")
        check_precision(self.precision)

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "thresholds": list(self.thresholds)}


@dataclass
class RenderResult(Rich):
    """What `render` returns. Tensors are on the CPU; N is the number of images rendered. In Jupyter
    it shows its images with their objective values (`phosphene.display`); ``show()`` elsewhere."""

    images: torch.Tensor  # (N, 3, H, W) in [0, 1]
    history: torch.Tensor  # (steps, N) objective per step, on the transformed views
    final: torch.Tensor  # (N,) objective on the un-transformed final images
    transparency: torch.Tensor  # (N, 1, H, W) in [0, 1]: accumulated |dL/dx|, max-normalized
    labels: list[str]
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)  # step -> (N, 3, H, W)
    rgba: torch.Tensor | None = None  # (N, 4, H, W) colour and opacity of a transparent render
    # (`param.AlphaImage`; ``images`` are then these over mid-grey)

    def save(self, out_dir: str | Path, prefix: str = "unit", grid_name: str = "grid.png",
             columns: int | None = None) -> dict[str, Any]:
        """Write one PNG per image (and per threshold), a labelled grid PNG and ``render.json`` (settings,
        and per unit its final objective, its objective at the first and last step and at every step)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = []
        for i, image in enumerate(self.images):
            name = f"{prefix}_{i:03d}_{_slug(self.labels[i])}.png"
            save_image(image, out / name)
            files.append(name)
            if self.rgba is not None:  # the transparent picture beside the one over grey
                save_image(self.rgba[i], out / name.replace(".png", "_rgba.png"))
        snapshots = {}
        for step, images in self.snapshots.items():
            snapshots[str(step)] = [f"{prefix}_{i:03d}_step{step}.png" for i in range(len(images))]
            for image, name in zip(images, snapshots[str(step)]):
                save_image(image, out / name)
        room = max(4, self.images.shape[-1] // 6)  # characters that fit under a tile (image_grid)
        captions = [f"{lab[:max(1, room - len(f'{val:.3g}') - 1)]} {val:.3g}"
                    for lab, val in zip(self.labels, self.final.tolist())]
        save_image(image_grid(self.images, captions, columns=columns, note=GRID_NOTE), out / grid_name)
        record = {
            "settings": self.settings,
            "seconds": round(self.seconds, 3),
            "units": [
                {"label": lab, "file": f, "final_objective": float(v), "first_step_objective": h[0],
                 "last_step_objective": h[-1], "history": h}
                for lab, f, v, h in zip(self.labels, files, self.final, self.history.T.tolist())
            ],
            "grid": grid_name,
        }
        if snapshots:
            record["thresholds"] = snapshots
        atomic_write_bytes(out / "render.json", json.dumps(record, indent=2).encode())
        return record

    def _view(self) -> View:
        settings = self.settings
        captions = [f"{lab}\n{val:.2f}" for lab, val in zip(self.labels, self.final.tolist())]
        sections = [Section("images", tiles(self.images, captions), GRID_NOTE)]
        sections += [Section(f"step {step}", tiles(images, self.labels))
                     for step, images in sorted(self.snapshots.items())]
        if len(self.history):
            plot = line_plot(self.history, "objective", labels=self.labels)
            sections.append(Section("objective per step (transformed views)", [Tile(plot, plot=True)]))
        numbers = {"images": len(self.images), "size": self.images.shape[-1], "steps": len(self.history),
                   "param": settings.get("param", "?"), "best objective": float(self.final.max()),
                   "seconds": round(self.seconds, 1)}
        return View(f"render: {settings.get('objective', '')} on {settings.get('model', 'model')}", numbers,
                    sections)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)[:40]


def as_objective(objective: Objective | str | Callable[[torch.Tensor], torch.Tensor]) -> Objective:
    """An `Objective`, a unit string ``"layer:channel"`` (see `units.unit`), or a plain callable
    ``f(images (N, 3, H, W)) -> (N,)`` (it reads the images, so the model is not truncated for it)."""
    if isinstance(objective, Objective):
        return objective
    if isinstance(objective, str):
        return unit(objective)
    if callable(objective):
        name = getattr(objective, "__name__", type(objective).__name__)
        return Objective(lambda acts: objective(acts[INPUT]), [INPUT], name)
    raise PhospheneError(f"cannot use {objective!r} as an objective")


class Renderer:
    """The render loop as an object: set up in ``__init__``, one optimizer step per `step`,
    `result` evaluates the clean images. Use as a context manager (or call `close`): it freezes
    the model and hooks its layers until closed."""

    def __init__(self, model: nn.Module, objective: Objective | str | Callable,
                 param: str | nn.Module = "fourier", transforms: str | Compose | None = "standard",
                 config: RenderConfig | None = None, optimizer: OptimizerFactory | None = None,
                 device: str | torch.device | None = None, param_options: dict[str, Any] | None = None,
                 output_key: str | int | None = None):
        self.started = time.perf_counter()
        model = as_image_model(with_output(model, output_key))  # logits of a dict/tuple-returning net
        self.model, self.objective = model, as_objective(objective)
        self.config = config = config or RenderConfig()
        self.device = torch.device(device) if device is not None else model.device
        self.size = config.size or model.input_size
        self.fixed = model.fixed_side  # vision transformers: the views end at this side
        self.batch = config.batch or self.objective.batch_size or 1
        if any(not 1 <= t <= config.steps for t in config.thresholds):
            raise PhospheneError(f"thresholds must be steps in 1..{config.steps}, got {config.thresholds}")
        cpu_gen = torch.Generator().manual_seed(config.seed)
        if isinstance(param, str):
            self.param_name = param
            channels = model.channels
            options = {**({"channels": channels} if channels != 3 else {}), **(param_options or {})}
            param = make_param(param, self.batch, self.size, generator=cpu_gen, **options)
        else:
            self.param_name = type(param).__name__
        self.param = param.to(self.device)
        if config.blur_every and not blurrable(self.param):
            raise PhospheneError(f"blur_every needs a pixel or fourier image, not {self.param_name}")
        self.transforms_name = transforms
        self.transform = ending_at(make_transforms(transforms, self.size), self.size, self.fixed)
        self.gen = torch.Generator(device=self.device).manual_seed(config.seed)
        self.precision = Precision(resolve_precision(config.precision, config.amp), self.device)
        factory = optimizer or self.precision.adam(config.lr)
        self.optimizer = factory(self.param.parameters())
        self.history: list[torch.Tensor] = []
        self.snapshots: dict[int, torch.Tensor] = {}
        self.saliency = torch.zeros(self.batch, 1, self.size, self.size, device=self.device)
        self.autocast = self.precision.autocast()
        self.channels_last = resolve_channels_last(config.channels_last, self.device)
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self._stack = contextlib.ExitStack()
        try:
            if self.device.type == "cpu":  # freed tensors reused, not page-faulted in again each step
                self._stack.enter_context(heap_kept())
            self._stack.enter_context(memory_format(model, self.channels_last))
            self._stack.enter_context(frozen(model))
            self._stack.enter_context(fold_batchnorm(model, self.objective.layers, self.fixed or self.size,
                                                     self.device, config.fold))
            self.tap = self._stack.enter_context(LayerTap(model, self.objective.layers,
                                                          truncate=config.truncate,
                                                          layouts=config.layouts))
        except BaseException:
            self._stack.close()  # the model is restored (unfolded, unfrozen) before the error goes up
            raise
        if config.compile:
            self.tap.forward = compiled(model)

    def _accumulate(self, grad: torch.Tensor) -> None:
        self.saliency.add_(self.precision.unscale(grad.detach()).abs().sum(1, keepdim=True))

    def _acts(self, views: torch.Tensor, images: torch.Tensor, copies: int = 1) -> Acts:
        """The tapped activations of ``views``, plus the untransformed ``images`` under `IMAGE` when
        the objective reads pixels (`phosphene.regularizers`)."""
        acts = self.tap(views)
        if INPUT in self.objective.layers:
            acts = {**acts, IMAGE: images}
        return Acts(acts, copies)

    def step(self) -> torch.Tensor:
        """One optimizer step; returns the objective per image (N,) on the transformed views."""
        copies = self.config.copies
        self.optimizer.zero_grad(set_to_none=True)
        images = self.param()
        if images.requires_grad:
            images.register_hook(self._accumulate)
        views = self.transform(images, self.gen, copies=copies).contiguous(memory_format=self.memory_format)
        with self.autocast:
            values = evaluate(self.objective, self._acts(views, images, copies), copies).float()
        self.precision.backward_step(-values.sum(), self.optimizer)
        values = values.detach()
        self.history.append(values)
        if self.config.blur_every and len(self.history) % self.config.blur_every == 0:
            blur_param_(self.param, self.config.blur_sigma)
        if len(self.history) in self.config.thresholds:
            with torch.no_grad():
                self.snapshots[len(self.history)] = self.param().float().detach().cpu()
        return values

    def images(self) -> torch.Tensor:
        """The current images (N, 3, H, W), without gradient."""
        with torch.no_grad():
            return self.param().float()

    def result(self) -> RenderResult:
        """Evaluate the clean images and gather everything into a `RenderResult`."""
        images = self.images()
        clean = fit_side(images, self.fixed).contiguous(memory_format=self.memory_format)
        with torch.no_grad(), self.autocast:
            final = evaluate(self.objective, self._acts(clean, images))
        peak = self.saliency.flatten(1).amax(1).clamp_min(1e-12)[:, None, None, None]
        history = (torch.stack(self.history) if self.history
                   else torch.zeros(0, self.batch, device=self.device))
        labels = name_classes([self.objective.label(i) for i in range(self.batch)],
                              getattr(self.model, "class_names", None))
        with torch.no_grad():  # a transparent image (`param.AlphaImage`): colour and opacity
            rgba = self.param.rgba().float().cpu() if hasattr(self.param, "rgba") else None
        return RenderResult(images.detach().cpu(), history.cpu(), final.float().cpu(),
                            (self.saliency / peak).cpu(), labels, self.settings(),
                            time.perf_counter() - self.started, dict(self.snapshots), rgba)

    def settings(self) -> dict[str, Any]:
        """The config plus what the loop resolved (size, batch, names), as recorded in JSON."""
        transforms = self.transforms_name
        return {
            **self.config.record(), "size": self.size, "batch": self.batch,
            "objective": self.objective.name, "param": self.param_name,
            "colour_gain": getattr(self.param, "colour_gain", None),
            "optimizer": type(self.optimizer).__name__,
            "transforms": transforms if isinstance(transforms, str) or transforms is None
            else repr(transforms.transforms),
            "model": getattr(self.model, "name", type(self.model).__name__),
            "stop_layer": self.tap.stop_layer, "channels_last": self.channels_last,
            "precision": self.precision.name,
        }

    def run(self, progress: bool | None = None) -> RenderResult:
        """All ``config.steps`` steps, then `result`; closes the renderer."""
        with self:
            for _ in progress_bar(range(self.config.steps), desc="render", unit="step", leave=False,
                                  progress=progress):
                self.step()
            return self.result()

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def render(
    model: nn.Module,
    objective: Objective | str | Callable[[torch.Tensor], torch.Tensor],
    config: RenderConfig | None = None,
    *,
    param: str | nn.Module = "fourier",
    transforms: str | Compose | None = "standard",
    optimizer: OptimizerFactory | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    param_options: dict[str, Any] | None = None,
    output_key: str | int | None = None,
    **overrides: Any,
) -> RenderResult:
    """Optimize images to maximize ``objective`` on ``model``; one image per batch element.

    The loop's settings are a `RenderConfig` (``config``, default: its defaults) whose fields can be
    overridden by keyword: ``render(model, obj, steps=64, size=128, seed=3)`` (an unknown keyword is
    a `PhospheneError` naming the close matches).

    Args:
        model: takes (N, 3, H, W) images in [0, 1] (see `load_model`).
        objective: an `Objective` (its unit lists set the batch size unless ``batch`` is given), a
            unit string ``"layer:channel"`` / ``"layer:channel@y,x"``, or a callable
            ``f(images) -> (N,)``.
        config: the settings (`RenderConfig`: steps, lr, size, batch, seed, copies, amp, precision,
            truncate, channels_last, thresholds, fold, compile, layouts; documented there).
            ``precision="bf16"`` or ``"fp16"`` (CUDA) runs the model's forward under autocast while
            the image parameters stay float32; ``compile=True`` compiles the truncated forward.
        param: "fourier", "pixel", "maco", or a module whose ``forward()`` returns the images;
            ``param_options`` are its factory's keyword arguments.
        transforms: "standard" (lucid's), "crops" (faccent's), "none", or a `Compose`.
        optimizer: ``factory(parameters) -> torch.optim.Optimizer`` (default: Adam with ``lr``).
        device: where to run (default: the model's device).
        output_key: the key, index or attribute of the logits when the network returns a dict, a
            tuple or an output object (the class objectives read them; see `load_model`'s ``output``).
        **overrides: `RenderConfig` fields.
    Returns:
        a `RenderResult` with images, objective history, final objective on the clean images,
        a transparency map, and the snapshots at ``thresholds``.
    """
    config = with_overrides(RenderConfig, config, overrides, "render")
    renderer = Renderer(model, objective, param, transforms, config, optimizer, device, param_options,
                        output_key)
    return renderer.run(progress)

"""λ means faccent's λ: phosphene's first accentuation step equals faccent's, re-computed here.

faccent 1.0.3 (render.render_vis with accent_reg_layer, param.fourier_phase, transform.box_crop_2 +
resize; never imported here) starts from sigmoid(recorrelate(irfft2(|F| sigmoid(5) e^{i phi}))),
F = rfft2(decorrelate(logit(clamp(x0, 1e-6)))), sets β = sum|d f/dθ| / sum|d R/dθ| over θ = (phase,
gate) on one draw of crops, then minimizes -(f - λ β R) with Adam(lr 0.05), f and R averaged over
crops made by slicing integer boxes and resizing with F.interpolate(bilinear, antialias=True,
align_corners=True). That loop is written out below with plain torch (faccent's colour matrix typed
in, activations by plain forward hooks) on phosphene's box draws, without noise, and compared with
`accentuate`: β, the step-0 f and R, the weight on R (λ β: no calibration constant) and the image
after one update. At faccent's full defaults (224 px, 16 crops of side 5-99 %, noise 0.02) the same
loop also adds faccent's noise as faccent does, to each slice *before* its resize (phosphene adds
the resized noise to the resized slice: the same, the resize being linear), drawn from phosphene's
generator in phosphene's order (boxes, then per box Gaussian and uniform noise).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import phosphene
from phosphene import objectives as obj
from phosphene.accentuation import accentuate
from phosphene.accentuation.boxes import crop_boxes, draw_boxes

SIZE = 40
CROPS = 2
SIDE = (0.3, 0.99)
SEED = 5
LAMS = [1.0, 2.0]
FACCENT_COLORS = torch.tensor([[0.56282854, 0.58447580, 0.58447580],
                               [0.19482528, 0.00000000, -0.19482528],
                               [0.04329450, -0.10823626, 0.06494176]])


def faccent_views(image: torch.Tensor, boxes: torch.Tensor, size: int = SIZE,
                  noise: list[torch.Tensor] | None = None) -> torch.Tensor:
    """faccent's transforms: slice each box, add its noise (at the slice's resolution), resize."""
    slices = [image[:, :, r0:r1, c0:c1] for r0, r1, c0, c1 in boxes.tolist()]
    if noise is not None:
        slices = [part + extra for part, extra in zip(slices, noise)]
    return torch.cat([F.interpolate(part, size=(size, size), mode="bilinear", antialias=True,
                                    align_corners=True) for part in slices])


def faccent_draw(count: int, canvas: int, side: tuple[float, float], std: float,
                 gen: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """faccent's boxes and its per-box noise (Gaussian std + uniform +-std/2, at the box's size)."""
    boxes = draw_boxes(count, canvas, side, gen, "cpu")
    if not std:
        return boxes, None
    noise = []
    for r0, r1, c0, c1 in boxes.tolist():
        shape = (1, 3, r1 - r0, c1 - c0)
        extra = torch.randn(shape, generator=gen) * std
        noise.append(extra + (torch.rand(shape, generator=gen) - 0.5) * std)
    return boxes, noise


class Faccent:
    """faccent's accentuation loop for one seed, on given boxes."""

    def __init__(self, model, kind: str, unit: int, layer: str, reg_layer: str, seed: torch.Tensor,
                 size: int = SIZE):
        self.model, self.kind, self.unit, self.seed, self.size = model, kind, unit, seed, size
        self.acts: dict[str, torch.Tensor] = {}
        names = {"reg": reg_layer} if kind == "class" else {"reg": reg_layer, "f": layer}
        self.hooks = [model.net.get_submodule(path).register_forward_hook(
            lambda _m, _i, out, key=key: self.acts.__setitem__(key, out)) for key, path in names.items()]
        x = seed.clamp(1e-6, 1 - 1e-6)
        logits = torch.log(x / (1 - x))
        spectrum = torch.fft.rfft2(logits.permute(0, 2, 3, 1).matmul(torch.linalg.inv(FACCENT_COLORS))
                                   .permute(0, 3, 1, 2))
        self.magnitude = spectrum.abs()
        self.phase = spectrum.angle().requires_grad_(True)
        self.gate = torch.full(spectrum.shape, 5.0, requires_grad=True)

    def image(self) -> torch.Tensor:
        magnitude = self.magnitude * torch.sigmoid(self.gate)
        buffer = torch.complex(torch.cos(self.phase) * magnitude, torch.sin(self.phase) * magnitude)
        t = torch.fft.irfft2(buffer).permute(0, 2, 3, 1).matmul(FACCENT_COLORS).permute(0, 3, 1, 2)
        return torch.sigmoid(t)

    def f_and_r(self, boxes: torch.Tensor, noise: list[torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        # faccent crops the batch (image, seed) together: one slice and one noise for both
        logits = self.model(torch.cat([faccent_views(self.image(), boxes, self.size, noise),
                                       faccent_views(self.seed, boxes, self.size, noise)]))
        k = boxes.shape[0]
        f = logits[:k, self.unit] if self.kind == "class" else self.acts["f"][:k, self.unit]
        reg = self.acts["reg"]
        r = torch.norm(reg[:k] - reg[k:], dim=1)
        return f.mean(), r.mean()

    def beta(self, boxes: torch.Tensor, noise: list[torch.Tensor] | None = None) -> float:
        f, r = self.f_and_r(boxes, noise)
        grad_f = torch.autograd.grad(f, [self.phase, self.gate], retain_graph=True)
        grad_r = torch.autograd.grad(r, [self.phase, self.gate])
        return float(sum(g.abs().sum() for g in grad_f) / sum(g.abs().sum() for g in grad_r))

    def step(self, boxes: torch.Tensor, weight: float, noise: list[torch.Tensor] | None = None
             ) -> tuple[float, float, torch.Tensor]:
        optimizer = torch.optim.Adam([self.phase, self.gate], lr=0.05)
        f, r = self.f_and_r(boxes, noise)
        (-(f - weight * r)).backward()
        optimizer.step()
        with torch.no_grad():
            return float(f), float(r), self.image()

    def close(self) -> None:
        for hook in self.hooks:
            hook.remove()


@pytest.fixture(scope="module")
def hen(samples_dir) -> torch.Tensor:
    return phosphene.load_image(samples_dir / "n01514859_hen.JPEG", SIZE)[None]


def test_faccent_crops_are_sliced_boxes_resized_as_faccent_resizes(hen):
    boxes = draw_boxes(6, SIZE, (0.05, 0.99), torch.Generator().manual_seed(0), "cpu")
    sides = boxes[:, 1] - boxes[:, 0]
    assert ((boxes[:, 0] >= 0) & (boxes[:, 1] <= SIZE) & (sides >= 1)).all()
    assert ((sides - (boxes[:, 3] - boxes[:, 2])).abs() <= 1).all()  # square up to truncation
    pair = torch.cat([hen, hen.flip(-1)])  # two copies of one seed share its boxes
    views = crop_boxes(pair, boxes, SIZE, group=2)
    assert torch.equal(views[:6], faccent_views(hen, boxes))
    assert torch.equal(views[6:], faccent_views(hen.flip(-1), boxes))


@pytest.mark.parametrize("kind, unit, layer, reg_layer", [("class", 309, None, "_blocks.6"),
                                                           ("channel", 7, "_blocks.4", "_blocks.2")])
def test_first_step_is_faccents(model, hen, kind, unit, layer, reg_layer, one_thread):
    objective = obj.class_logit(unit) if kind == "class" else obj.channel(layer, unit)
    result = accentuate(model, objective, hen, reg_layer, lam=LAMS, steps=1, crops=CROPS, crop_side=SIDE,
                        noise=0.0, input_size=SIZE, seed=SEED, fold=False, progress=False)
    # accentuate draws β's crops from seed + 1 and the step's from seed (noise 0: boxes only)
    balance_boxes = draw_boxes(CROPS, SIZE, SIDE, torch.Generator().manual_seed(SEED + 1), "cpu")
    step_boxes = draw_boxes(CROPS, SIZE, SIDE, torch.Generator().manual_seed(SEED), "cpu")
    for row, lam in enumerate(LAMS):
        reference = Faccent(model, kind, unit, layer, reg_layer, hen)
        try:
            with phosphene.layers.model_state.frozen(model):
                beta = reference.beta(balance_boxes)
                f0, r0, image = reference.step(step_boxes, lam * beta)
        finally:
            reference.close()
        assert float(result.beta[0]) == pytest.approx(beta, rel=1e-3)
        assert float(result.f_history[0, row]) == pytest.approx(f0, rel=1e-3, abs=1e-4)
        # phosphene smooths the norm, sqrt(d^2 + 1e-6) - 1e-3: at most 1e-3 below it per position
        assert float(result.r_history[0, row]) == pytest.approx(r0, abs=1.5e-3)
        assert (result.images[row] - image[0]).abs().max() < 2e-3, lam
    # the two λ differ only by the weight λ β on R: their first updates differ
    assert (result.images[0] - result.images[1]).abs().max() > 1e-3


def test_first_steps_are_faccents_at_faccents_full_defaults(model, samples_dir, one_thread):
    """224 px, 16 crops of side 5-99 %, noise 0.02 at the crops' resolution, λ = 1: faccent's defaults,
    on the accentuation whose λ = 1 was furthest from faccent's (a tench toward class 285, R at
    `_blocks.5`); two updates, so that Adam's state and the second draw are faccent's too. Adam's first
    updates are nearly lr·sign(g) per coefficient, so round-off grows step by step (on the CPU here:
    image max difference 6e-4 after one update, 2.2e-3 after two; f 0.6 % apart after three)."""
    size, crops, side, noise, steps = 224, 16, (0.05, 0.99), 0.02, 2
    tench = phosphene.load_image(samples_dir / "n01440764_tench.JPEG", size)[None]
    result = accentuate(model, obj.class_logit(285), tench, "_blocks.5", lam=1.0, steps=steps, crops=crops,
                        crop_side=side, noise=noise, input_size=size, seed=SEED, fold=False, progress=False,
                        measure_crops=1)
    balance_boxes, balance_noise = faccent_draw(crops, size, side, noise,
                                                torch.Generator().manual_seed(SEED + 1))
    sides = (balance_boxes[:, 1] - balance_boxes[:, 0]).float() / size
    assert sides.min() < 0.3 and sides.max() > 0.7  # small and large crops: the whole range is used
    gen = torch.Generator().manual_seed(SEED)  # the steps' draws, one after another
    reference = Faccent(model, "class", 285, None, "_blocks.5", tench, size)
    try:
        with phosphene.layers.model_state.frozen(model):
            beta = reference.beta(balance_boxes, balance_noise)
            optimizer = torch.optim.Adam([reference.phase, reference.gate], lr=0.05)
            for step in range(steps):
                boxes, extra = faccent_draw(crops, size, side, noise, gen)
                f, r = reference.f_and_r(boxes, extra)
                optimizer.zero_grad()
                (-(f - beta * r)).backward()
                optimizer.step()
                # float round-off of 16 crops through five blocks (phosphene runs channels-last), and
                # R's smoothing (about 1e-3 below the norm where the image differs)
                assert float(result.f_history[step, 0]) == pytest.approx(float(f), rel=1e-3, abs=1e-3), step
                assert float(result.r_history[step, 0]) == pytest.approx(float(r), rel=1e-3, abs=1.5e-3), step
            with torch.no_grad():
                image = reference.image()
    finally:
        reference.close()
    assert float(result.beta[0]) == pytest.approx(beta, rel=1e-3)
    difference = (result.images[0] - image[0]).abs()
    assert difference.max() < 5e-3 and difference.mean() < 1e-3

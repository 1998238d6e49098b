"""β of feature accentuation: phosphene's default equals faccent's formula, computed here independently.

faccent (render.py) takes one draw of crops of its step-0 image, sigmoid(recorrelate(irfft2(|F|
sigmoid(g) e^{i phi}))) with F = rfft2(decorrelate(logit(seed))) and g = 5, and sets β to
sum|d obj/d params| / sum|d reg/d params| over its parameters [phase, gate]. Here that formula is
written out with plain torch (faccent's colour matrix typed in) and compared with `balance`.
"""

from __future__ import annotations

import pytest
import torch

import phosphene
from phosphene import objectives as obj
from phosphene.accentuation import accentuate
from phosphene.accentuation.balance import balance
from phosphene.accentuation.crops import LatentDistance, SharedCrops, channel_distance
from phosphene.errors import PhospheneError
from phosphene.layers.model_state import frozen
from phosphene.layers.tap import LayerTap
from phosphene.objectives import Acts
from phosphene.param import COLOR_CORRELATION

SIZE = 48
CROPS = 3
# faccent's `imagenet_color_correlation`, applied as x @ M (so M.T acts on colour vectors)
FACCENT_COLORS = torch.tensor([[0.56282854, 0.58447580, 0.58447580],
                               [0.19482528, 0.00000000, -0.19482528],
                               [0.04329450, -0.10823626, 0.06494176]])


def faccent_beta(model, objective, reg_layer, seed, crops: SharedCrops, gen_seed: int) -> float:
    """faccent's β for one seed (1, 3, H, W), on the crops phosphene draws from ``gen_seed``."""
    x = seed.clamp(1e-6, 1 - 1e-6)  # faccent's safe_logit
    logits = torch.log(x / (1 - x))
    decorrelated = torch.einsum("nchw,cd->ndhw", logits, torch.linalg.inv(FACCENT_COLORS))
    spectrum = torch.fft.rfft2(decorrelated)
    phase = spectrum.angle().requires_grad_(True)
    gate = torch.full(spectrum.shape, 5.0, requires_grad=True)
    magnitude = spectrum.abs() * torch.sigmoid(gate)
    buffer = torch.complex(torch.cos(phase) * magnitude, torch.sin(phase) * magnitude)
    image = torch.sigmoid(torch.einsum("nchw,cd->ndhw", torch.fft.irfft2(buffer), FACCENT_COLORS))
    draw = crops.draw(1, CROPS, SIZE, torch.Generator().manual_seed(gen_seed), "cpu")
    with LayerTap(model, set(objective.layers) | {reg_layer}) as tap:
        acts = tap(crops.apply_draw(image, draw))
        f = objective(Acts(acts, CROPS)).sum()
        with torch.no_grad():
            seed_acts = tap(crops.apply_draw(seed, draw))[reg_layer]
        r = channel_distance(acts[reg_layer], seed_acts, 1).sum()
    grad_f = torch.autograd.grad(f, [phase, gate], retain_graph=True)
    grad_r = torch.autograd.grad(r, [phase, gate])
    return float(sum(g.abs().sum() for g in grad_f) / sum(g.abs().sum() for g in grad_r))


@pytest.fixture(scope="module")
def hen(samples_dir) -> torch.Tensor:
    return phosphene.load_image(samples_dir / "n01514859_hen.JPEG", SIZE)[None]


def test_colour_matrix_is_faccents():
    assert torch.allclose(COLOR_CORRELATION, FACCENT_COLORS.T, atol=2e-3)


@pytest.mark.parametrize("objective, reg_layer", [(obj.class_logit(309), "_blocks.6"),
                                                  (obj.channel("_blocks.4", 7), "_blocks.2")])
def test_params_balance_is_faccents_formula(model, hen, objective, reg_layer, one_thread):
    crops = SharedCrops((0.25, 0.99), SIZE, noise=0.02)
    distance = LatentDistance(model, reg_layer, hen, crops)
    with frozen(model):
        beta = balance(model, objective, distance, crops, CROPS, torch.Generator().manual_seed(3))
        expected = faccent_beta(model, objective, reg_layer, hen, SharedCrops((0.25, 0.99), SIZE, 0.02), 3)
        image_beta = balance(model, objective, distance, crops, CROPS, torch.Generator().manual_seed(3),
                             balance_by="image")
    distance.close()
    assert float(beta[0]) == pytest.approx(expected, rel=1e-3)
    # the image balance is a different number: λ would mean something else
    assert abs(float(image_beta[0]) / expected - 1) > 0.01


def test_accentuate_records_the_balance_and_rejects_unknown_ones(model, hen, one_thread):
    kwargs = dict(steps=1, crops=2, input_size=SIZE, progress=False)
    result = accentuate(model, obj.class_logit(309), hen, "_blocks.4", **kwargs)
    assert result.settings["balance"] == "params"
    by_image = accentuate(model, obj.class_logit(309), hen, "_blocks.4", balance_by="image", **kwargs)
    assert by_image.settings["balance"] == "image"
    assert float(by_image.beta[0]) != pytest.approx(float(result.beta[0]), rel=1e-3)
    with pytest.raises(PhospheneError, match="balance"):
        accentuate(model, obj.class_logit(309), hen, "_blocks.4", balance_by="pixels", **kwargs)

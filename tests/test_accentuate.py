"""Feature accentuation on the real EfficientNet-Lite0 and sample images (small sizes, few steps)."""

from __future__ import annotations

import json

import pytest
import torch

import phosphene
from phosphene import objectives as obj
from phosphene.accentuation import (
    SharedCrops,
    accentuate,
    channel_distance,
    measure,
)
from phosphene.accentuation.circuits import circuit_overlap, iou
from phosphene.accentuation.masks import attribution_mask, transparency_mask
from phosphene.errors import LayerNotFoundError, PhospheneError
from phosphene.param import SEEDED_PARAMETERIZATIONS, ConfinedImage, seeded_param
from phosphene.render import render
from phosphene.transforms import gaussian_blur

SIZE = 64
STEPS = 20
BEE = 309  # a class that neither seed image shows
REG = "_blocks.6"
SEEDS = ("n01514859_hen.JPEG", "n04147183_schooner.JPEG")
CROP = (0.25, 0.99)  # at 64 px, crops under 16 px say little about the whole image
LAMS = (0.25, 1.0, 4.0)


@pytest.fixture(scope="module")
def seeds(samples_dir) -> torch.Tensor:
    return torch.stack([phosphene.load_image(samples_dir / name, SIZE) for name in SEEDS])


@pytest.fixture(scope="module")
def sweep(model, seeds):
    """Two seeds x three lambdas, accentuating 'bee', in one batched call."""
    return accentuate(model, obj.class_logit(BEE), seeds, REG, lam=list(LAMS), steps=STEPS, crops=3,
                      crop_side=CROP, input_size=SIZE, progress=False)


@pytest.fixture(scope="module")
def visualization(model):
    """A noise-seeded visualization of the same class, same crops and budget."""
    return render(model, obj.class_logit(BEE), param="fourier", transforms="crops", steps=STEPS,
                  size=SIZE, copies=3, progress=False).images


# -- step 0 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SEEDED_PARAMETERIZATIONS)
def test_seeded_parameterization_reproduces_the_seed(seeds, name):
    image = seeded_param(name, seeds)
    assert (image() - seeds).abs().max() < 1 / 255


def test_step_zero_output_equals_the_seed(model, seeds):
    """With lr 0 the optimization cannot move: the returned image is the step-0 image, the seed
    itself in the phosphene style, faccent's 0.7 % lower-contrast copy of it in the faccent style."""
    kwargs = dict(steps=1, crops=2, lr=0.0, input_size=SIZE, progress=False)
    exact = accentuate(model, obj.class_logit(BEE), seeds[:1], REG, style="phosphene", **kwargs)
    assert (exact.images - seeds[:1]).abs().max() < 1 / 255
    assert exact.r_after.abs().max() < 1e-2
    faccent = accentuate(model, obj.class_logit(BEE), seeds[:1], REG, **kwargs)
    x = seeds[:1].clamp(1e-6, 1 - 1e-6)
    start = torch.sigmoid(torch.sigmoid(torch.tensor(5.0)) * torch.log(x / (1 - x)))
    assert (faccent.images - start).abs().max() < 1e-4
    assert 1e-2 < float(faccent.r_after[0]) < 1.0  # R of a 0.7 % contrast change: small


def test_confined_image_changes_only_inside_the_mask(seeds):
    mask = torch.zeros(2, 1, SIZE, SIZE)
    mask[..., :, : SIZE // 2] = 1
    inner = seeded_param("pixel", seeds)
    with torch.no_grad():
        inner.pixels.add_(1.0)
    out = ConfinedImage(inner, seeds, mask)()
    assert (out - seeds)[..., SIZE // 2:].abs().max() == 0
    assert (out - seeds)[..., : SIZE // 2].abs().mean() > 0.05


# -- crops and R --------------------------------------------------------------------------------
def test_shared_crops_give_the_seed_the_same_views(seeds):
    crops = SharedCrops(size=48, noise=0.02, group=3)
    images = seeds.repeat_interleave(3, 0)  # 3 identical copies per seed
    views = crops(images, torch.Generator().manual_seed(0), copies=5)
    seed_views = crops.apply_draw(seeds, crops.take())
    assert views.shape == (2 * 3 * 5, 3, 48, 48) and seed_views.shape == (2 * 5, 3, 48, 48)
    per_copy = views.view(2, 3, 5, 3, 48, 48)
    assert torch.allclose(per_copy, seed_views.view(2, 1, 5, 3, 48, 48).expand_as(per_copy))
    assert crops.take() is None  # a draw is handed out once


def test_channel_distance_is_mean_channel_l2():
    seed_acts = torch.zeros(2, 4, 3, 3)  # 2 seeds, 1 view each
    acts = torch.zeros(4, 4, 3, 3)  # 2 copies per seed
    acts[1, :, 0, 0] = torch.tensor([3.0, 4.0, 0.0, 0.0])  # distance 5 at one of 9 positions
    dist = channel_distance(acts, seed_acts, n=2, eps=0.0)
    assert torch.allclose(dist, torch.tensor([0.0, 5 / 9, 0.0, 0.0]))


# -- the method ---------------------------------------------------------------------------------
def test_class_accentuation_raises_the_logit(sweep):
    """lam = 1: 'bee' rises by several logits on a hen and a schooner (its probability many-fold)."""
    row = [i for i in range(len(sweep.lams) * 2) if sweep.lams[i % 3] == 1.0]
    gain = sweep.gain[row]
    print(f"bee logit {sweep.f_before[row].tolist()} -> {sweep.f_after[row].tolist()}, "
          f"probability factor ~ {torch.exp(gain).tolist()}")
    assert (gain > 2.0).all()  # logit +2: probability x ~7 or more


def test_accentuation_stays_far_closer_to_the_seed_than_a_visualization(model, sweep, seeds,
                                                                      visualization):
    _, r_vis = measure(model, obj.class_logit(BEE), REG, visualization.expand(2, -1, -1, -1), seeds,
                       crops=16, input_size=SIZE)
    r_accent = sweep.r_after[[1, 4]]  # lam = 1
    assert (r_accent < 0.5 * r_vis).all(), (r_accent, r_vis)
    assert (sweep.r_before == 0).all()


def test_lambda_sweep_is_monotone(sweep):
    """Larger lambda: smaller R and smaller gain, for each seed."""
    gain, r = sweep.gain.view(2, 3), sweep.r_after.view(2, 3)
    assert (gain[:, 1:] < gain[:, :-1]).all(), gain
    assert (r[:, 1:] < r[:, :-1]).all(), r
    assert sweep.beta.shape == (2,) and (sweep.beta > 0).all()


def test_result_holds_images_history_and_mask(sweep, seeds):
    assert sweep.images.shape == (6, 3, SIZE, SIZE)
    assert torch.equal(sweep.seeds, seeds)
    assert sweep.f_history.shape == sweep.r_history.shape == (STEPS, 6)
    assert sweep.mask.shape == (6, 1, SIZE, SIZE)
    assert sweep.mask.min() >= 0 and sweep.mask.max() <= 1 and sweep.mask.max() > 0.9
    assert sweep.attribution is None


def test_mask_concentrates_where_the_gradient_is():
    saliency = torch.rand(1, 3, 64, 64) * 0.01
    saliency[..., 8:40, 16:64] += 1.0  # 37.5 % of the image: above faccent's 80th-percentile clip
    alpha = transparency_mask(saliency)
    assert alpha.min() >= 0 and alpha.max() <= 1
    assert alpha[..., 12:36, 20:60].mean() > 0.9 and alpha[..., 46:, :10].mean() < 0.1


def _correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.flatten(1), b.flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


def test_accumulated_mask_follows_the_objective_gradient(model, sweep, seeds):
    """The transparency correlates with the seed's own |df/dx|, not with that map rotated 180 deg."""
    x = seeds.clone().requires_grad_(True)
    model(x)[:, BEE].sum().backward()
    grad = gaussian_blur(x.grad.abs().mean(1, keepdim=True), 2.0)
    mask = sweep.mask[[1, 4]]
    aligned = _correlation(mask, grad).mean()
    rotated = _correlation(mask, grad.flip(-1).flip(-2)).mean()
    assert aligned > rotated + 0.1, (aligned, rotated)


def test_regularization_in_pixel_space_and_at_a_deep_layer_both_run(model, seeds):
    for reg in ("input", "_blocks.14"):
        result = accentuate(model, obj.class_logit(BEE), seeds[:1], reg, steps=3, crops=2,
                            input_size=SIZE, progress=False)
        assert torch.isfinite(result.r_after).all() and result.r_after[0] > 0
        assert result.settings["reg_layer"] == reg


def test_channel_objective_and_other_parameterizations(model, seeds):
    result = accentuate(model, obj.channel("_blocks.10", [3, 7]), seeds, REG, steps=12, crops=2,
                        param="fourier", input_size=SIZE, progress=False)
    assert result.labels == ["_blocks.10:3", "_blocks.10:7"]
    assert (result.gain > 0).all()


def test_attribution_mask_confines_an_unrelated_feature(model, seeds, sweep):
    """'bee' is not in these images: confined, the changes stay in the attributed area instead of
    covering the image."""
    confined = accentuate(model, obj.class_logit(BEE), seeds, REG, lam=1.0, steps=STEPS, crops=3,
                          crop_side=CROP, input_size=SIZE, mask="attribution", progress=False)
    mask = confined.attribution
    assert mask.shape == (2, 1, SIZE, SIZE) and mask.min() >= 0 and mask.max() == 1
    change = (confined.images - seeds).abs().sum(1, keepdim=True)
    free = (sweep.images[[1, 4]] - seeds).abs().sum(1, keepdim=True)
    assert change[mask == 0].max() < 1e-5  # nothing changes outside the mask
    changed_area = (change > 0.02).float().mean()
    free_area = (free > 0.02).float().mean()
    assert changed_area < 0.6 * free_area, (changed_area, free_area)
    assert (confined.r_after < sweep.r_after[[1, 4]]).all()  # and so it moves less in latent space


def test_attribution_mask_marks_the_object(model, samples_dir):
    """For a tench's own class the mask covers part of the image, not all of it."""
    tench = phosphene.load_image(samples_dir / "n01440764_tench.JPEG", SIZE)[None]
    mask = attribution_mask(model, obj.class_logit(0), tench)
    assert mask.shape == (1, 1, SIZE, SIZE)
    blurred = gaussian_blur(torch.ones(1, 1, 8, 8), 1.0)
    assert torch.allclose(blurred, torch.ones_like(blurred))
    assert 0.02 < (mask > 0).float().mean() < 0.8


# -- circuits -----------------------------------------------------------------------------------
def test_iou_of_unit_sets():
    a = torch.tensor([[0, 1, 2, 3]])
    b = torch.tensor([[2, 3, 4, 5]])
    assert torch.allclose(iou(a, b, 8), torch.tensor([2 / 6]))
    assert torch.allclose(iou(a, a, 8), torch.tensor([1.0]))


def test_accentuation_shares_the_seeds_circuit_more_than_a_visualization(model, sweep, seeds,
                                                                         visualization):
    check = circuit_overlap(model, obj.class_logit(BEE), "_blocks.10",
                            {"seed": seeds, "accent": sweep.images[[1, 4]], "vis": visualization},
                            k=20)
    summary = check.summary()
    print(f"circuit IoU at _blocks.10, k=20: {summary}")
    assert set(summary) == {"seed~accent", "seed~vis", "accent~vis", "chance"}
    assert summary["seed~accent"] > summary["seed~vis"] + 0.2, summary
    assert check.units["seed"].shape == (2, 20)


def test_circuit_check_rejects_a_layer_after_the_objective(model, seeds):
    with pytest.raises(PhospheneError, match="upstream"):
        circuit_overlap(model, obj.channel("_blocks.4", 0), "_blocks.10",
                        {"a": seeds, "b": seeds}, k=5)


# -- results on disk and errors -----------------------------------------------------------------
def test_save_writes_pngs_figure_and_json(sweep, tmp_path):
    record = sweep.save(tmp_path, names=["hen", "schooner"])
    assert (tmp_path / "figure.png").is_file() and (tmp_path / "hen_lam0.25.png").is_file()
    saved = json.loads((tmp_path / "accentuate.json").read_text())
    assert saved == json.loads(json.dumps(record))
    rows = saved["accentuations"]
    assert len(rows) == 6 and {r["lam"] for r in rows} == set(LAMS)
    figure = sweep.figure()
    assert figure.size[0] > 4 * SIZE and figure.size[1] > 6 * SIZE


def test_bad_input_gives_clear_errors(model, seeds):
    with pytest.raises(LayerNotFoundError):
        accentuate(model, obj.class_logit(1), seeds, "_blocks.99", steps=1, progress=False)
    with pytest.raises(PhospheneError, match="lambdas"):
        accentuate(model, obj.class_logit(1), seeds, REG, lam=[-1.0], steps=1, progress=False)
    with pytest.raises(PhospheneError, match="units"):
        accentuate(model, obj.class_logit([1, 2, 3]), seeds, REG, steps=1, progress=False)
    with pytest.raises(PhospheneError, match="mask"):
        accentuate(model, obj.class_logit(1), seeds, REG, mask="everywhere", steps=1, progress=False)


def test_figure_columns_are_the_seeds_heat_map_and_one_visualization_per_unit(model, seeds):
    from phosphene.accentuation import add_figure_columns, attribution_heatmap

    objective, seeds = obj.class_logit([BEE, 1]), torch.nn.functional.interpolate(seeds, size=32)
    result = accentuate(model, objective, seeds, "_blocks.2", lam=[0.0, 1.0], steps=1, crops=1,
                        input_size=32, measure_crops=1, progress=False)
    assert result.columns == 4
    add_figure_columns(model, objective, result, steps=2)
    assert result.heatmap.shape == (2, 1, 32, 32) and result.visualization.shape == (4, 3, 32, 32)
    assert torch.allclose(result.heatmap, attribution_heatmap(model, objective, seeds))
    assert float(torch.quantile(result.heatmap[0].flatten(), 0.99)) == pytest.approx(1.0, abs=1e-3)
    vis = result.visualization  # rows (seed, lambda): one render per unit, shared by its lambdas
    assert torch.equal(vis[0], vis[1]) and torch.equal(vis[2], vis[3]) and not torch.equal(vis[0], vis[2])
    assert result.columns == 6 and len(result.panels()[0]) == 6 * 4

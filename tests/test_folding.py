"""fold_batchnorm: which pairs fold, exact activations where read, the user's model untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import phosphene
from phosphene import objectives as obj
from phosphene.layers.folding import fold_batchnorm
from phosphene.layers.model_state import frozen


class Branchy(nn.Module):
    """Conv->BN pairs that fold, and look-alikes that must not."""

    def __init__(self):
        super().__init__()
        self.conv_a, self.bn_a = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.conv_b, self.bn_b = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)  # conv with bias
        self.conv_skip, self.bn_skip = nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8)  # conv output used twice
        self.conv_inplace, self.bn_inplace = nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8)  # relu_ in between
        self.bn_free = nn.BatchNorm2d(8)  # input is not a convolution's output
        for bn in (self.bn_a, self.bn_b, self.bn_skip, self.bn_inplace, self.bn_free):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.5, 0.5)

    def forward(self, x):
        h = torch.relu(self.bn_a(self.conv_a(x)))
        h = self.bn_b(self.conv_b(h))
        s = self.conv_skip(h)
        h = self.bn_skip(s) + s
        h = self.bn_inplace(torch.relu_(self.conv_inplace(h)))
        return self.bn_free(h + 1).mean((2, 3))


def snapshot(model: nn.Module):
    return ([(n, type(m), id(m)) for n, m in model.named_modules()],
            {k: v.clone() for k, v in model.state_dict().items()},
            [id(p) for p in model.parameters()])


def assert_same(model: nn.Module, before) -> None:
    modules, state, params = snapshot(model)
    assert modules == before[0] and params == before[2]
    assert state.keys() == before[1].keys()
    assert all(torch.equal(state[k], before[1][k]) for k in state)


def test_only_true_conv_bn_pairs_fold_and_outputs_stay_equal():
    torch.manual_seed(0)
    net = Branchy().eval()
    x = torch.rand(2, 3, 16, 16)
    before = snapshot(net)
    expected = net(x)
    with fold_batchnorm(net, size=16) as pairs:
        assert [(p.conv_name, p.bn_name) for p in pairs] == [("conv_a", "bn_a"), ("conv_b", "bn_b")]
        assert isinstance(net.bn_a, nn.Identity) and isinstance(net.bn_skip, nn.BatchNorm2d)
        assert torch.allclose(net(x), expected, rtol=1e-5, atol=1e-5)
    assert_same(net, before)


def test_read_layers_and_hooked_modules_keep_their_batchnorm():
    net = Branchy().eval()
    with fold_batchnorm(net, read=["bn_a"], size=16) as pairs:
        assert [p.bn_name for p in pairs] == ["bn_b"]
    with fold_batchnorm(net, read=["conv_b"], size=16) as pairs:
        assert [p.bn_name for p in pairs] == ["bn_a"]
    handle = net.bn_b.register_forward_hook(lambda *_: None)
    with fold_batchnorm(net, size=16) as pairs:
        assert [p.bn_name for p in pairs] == ["bn_a"]
    handle.remove()


def test_training_mode_disabled_or_no_batchnorm_is_a_no_op():
    net = Branchy().train()
    with fold_batchnorm(net, size=16) as pairs:
        assert pairs == []
    with fold_batchnorm(net.eval(), size=16, enabled=False) as pairs:
        assert pairs == [] and isinstance(net.bn_a, nn.BatchNorm2d)
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval()
    with fold_batchnorm(plain, size=16) as pairs:
        assert pairs == []


def test_model_is_restored_after_an_exception():
    net = Branchy().eval()
    before = snapshot(net)
    with pytest.raises(RuntimeError, match="boom"), fold_batchnorm(net, size=16) as pairs:
        assert pairs
        raise RuntimeError("boom")
    assert_same(net, before)


def test_efficientnet_activations_at_read_layers_equal_the_unfolded_model(model):
    layers = ["_blocks.3._bn1", "_blocks.8", "_blocks.8._project_conv", "logits"]
    x = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    before = snapshot(model)
    with frozen(model), torch.no_grad():
        with phosphene.LayerTap(model, layers) as tap:
            reference = tap(x)
        with fold_batchnorm(model, layers, size=96) as pairs, phosphene.LayerTap(model, layers) as tap:
            folded = tap(x)
            names = {p.bn_name for p in pairs}
    assert len(pairs) == 47  # 49 BatchNorms, minus the one read and the one after a read conv
    assert "net._blocks.3._bn1" not in names and "net._blocks.8._bn2" not in names
    for name in layers:
        scale = float(reference[name].abs().max())
        assert torch.allclose(folded[name], reference[name], rtol=1e-4, atol=1e-5 * scale), name
    assert_same(model, before)


def test_top1_on_sample_images_is_identical_with_folding(model, sample_batch, sample_forward):
    images = sample_batch[0][:48]
    with frozen(model), torch.no_grad(), fold_batchnorm(model, ["logits"]) as pairs:
        logits = model(images)
    assert len(pairs) == 49
    assert torch.equal(logits.argmax(1), sample_forward["logits"][:48].argmax(1))
    assert torch.allclose(logits, sample_forward["logits"][:48], atol=1e-3)


def test_render_histories_match_and_the_model_is_restored(model):
    objective = obj.channel("_blocks.5", [1, 3])
    kwargs = dict(steps=4, size=48, progress=False, seed=3)
    before = snapshot(model)
    plain = phosphene.render(model, objective, fold=False, **kwargs)
    folded = phosphene.render(model, objective, **kwargs)
    assert folded.settings["fold"] and not plain.settings["fold"]
    # The first step sees identical images: equal up to float round-off. Later steps may drift a
    # little: a ReLU6 input within round-off of 0 can flip and Adam's first steps follow the sign of
    # each gradient component, exactly as with any other change of summation order.
    assert torch.allclose(folded.history[0], plain.history[0], rtol=1e-4, atol=1e-4)
    assert torch.allclose(folded.history, plain.history, rtol=0.1)

    def explode(acts):
        raise RuntimeError("objective failed")

    with pytest.raises(RuntimeError, match="objective failed"):
        phosphene.render(model, obj.Objective(explode, ["_blocks.2"], "explode"), **kwargs)
    assert_same(model, before)


def test_accentuate_folds_and_restores_the_model(model):
    seed = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    before = snapshot(model)
    kwargs = dict(steps=2, crops=2, input_size=48, progress=False, measure_crops=2)
    folded = phosphene.accentuate(model, obj.channel("_blocks.4", 3), seed, "_blocks.3", **kwargs)
    plain = phosphene.accentuate(model, obj.channel("_blocks.4", 3), seed, "_blocks.3", fold=False, **kwargs)
    assert folded.settings["fold"] and not plain.settings["fold"]
    assert torch.allclose(folded.beta, plain.beta, rtol=1e-3)
    assert torch.allclose(folded.f_history[0], plain.f_history[0], rtol=1e-3, atol=1e-3)
    assert_same(model, before)

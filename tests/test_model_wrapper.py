"""`ImageModel`: its preprocessing spec (`prepare_image`) and declared outputs of dict/tuple models."""

from __future__ import annotations

from collections import namedtuple

import pytest
import torch
from PIL import Image
from torch import nn

import phosphene
from phosphene import objectives as obj
from phosphene.errors import ModelLoadError
from phosphene.models import ImageModel, ImageSpec


def test_spec_resizes_the_short_side_then_crops_the_centre():
    spec = ImageSpec(input_size=32, resize_size=40, interpolation="bilinear")
    image = torch.zeros(3, 50, 100)
    image[:, :, 45:55] = 1.0  # a bright vertical band in the middle
    out = spec.prepare(image)
    assert out.shape == (3, 32, 32)
    assert out[:, :, 14:18].mean() > 0.9 and out[:, :, :8].max() == 0  # band kept centred, edges cut


def test_spec_defaults_to_crop_fraction_0_875():
    spec = ImageSpec(input_size=224)
    assert spec.resize_size == 256 and spec.crop_fraction == pytest.approx(0.875)
    with pytest.raises(ValueError, match="interpolation"):
        ImageSpec(interpolation="lanczos")


def test_prepare_image_reads_files_and_pil_images_into_unit_range(tmp_path):
    model = ImageModel(nn.Identity(), input_size=16, resize_size=20)
    pil = Image.new("RGB", (64, 40), (255, 128, 0))
    pil.save(tmp_path / "orange.png")
    for source in (pil, tmp_path / "orange.png", str(tmp_path / "orange.png")):
        x = model.prepare_image(source)
        assert x.shape == (3, 16, 16)
        assert torch.allclose(x[:, 8, 8], torch.tensor([1.0, 128 / 255, 0.0]), atol=1e-3)


def test_classify_uses_the_model_preprocessing(model, samples_dir):
    tench = samples_dir / "n01440764_tench.JPEG"
    with torch.no_grad():
        logits = model(model.prepare_image(tench)[None])
    assert logits.argmax().item() == 0


class DictNet(nn.Module):
    """A tiny classifier that returns a dict, as detection or multi-head models do."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(6, 5)

    def forward(self, x):
        features = self.features(x)
        return {"features": features, "logits": self.head(features)}


Pair = namedtuple("Pair", ["embedding", "scores"])


class TupleNet(DictNet):
    def forward(self, x):
        out = super().forward(x)
        return Pair(out["features"], out["logits"])


def test_declared_output_key_index_or_attribute_selects_the_logits():
    torch.manual_seed(0)
    net = DictNet()
    x = torch.rand(2, 3, 12, 12)
    expected = net(x)["logits"]
    assert torch.equal(phosphene.load_model(net, output="logits")(x), expected)
    tuple_net = TupleNet()
    tuple_net.load_state_dict(net.state_dict())
    assert torch.equal(phosphene.load_model(tuple_net, output=1)(x), expected)
    assert torch.equal(phosphene.load_model(tuple_net, output="scores")(x), expected)


def test_an_undeclared_output_key_is_a_clear_error():
    model = phosphene.load_model(DictNet(), output="probs")
    with pytest.raises(ModelLoadError, match="no key 'probs'.*features, logits"):
        model(torch.rand(1, 3, 8, 8))


def test_class_logit_renders_on_a_dict_output_model():
    torch.manual_seed(0)
    model = phosphene.load_model(DictNet(), output="logits")
    result = phosphene.render(model, obj.class_logit([1, 3]), steps=8, size=24, progress=False,
                              transforms="none")
    assert result.images.shape == (2, 3, 24, 24)
    with torch.no_grad():
        logits = model(result.images)
    assert torch.allclose(result.final, logits[[0, 1], [1, 3]], atol=1e-5)
    assert (result.history[-1] > result.history[0]).all()

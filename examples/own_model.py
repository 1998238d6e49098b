"""Your own model: wrap any nn.Module that takes images in an ImageModel with its preprocessing, then
every phosphene API works on it (layers are its named_modules() names).

    python examples/own_model.py [OUT]
"""

import sys

import torch
from _tiny import pick
from torch import nn

import phosphene
from phosphene import objectives as obj

torch.manual_seed(0)
net = nn.Sequential(                   # stands in for your trained network
    nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.ReLU(),
    nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
model = phosphene.ImageModel(net, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), input_size=64,
                             name="my-cnn").eval()
out = sys.argv[1] if len(sys.argv) > 1 else "out/own_model"
print(phosphene.layer_shapes(model, 64))
result = phosphene.render(model, obj.channel("2", range(8)), steps=pick(128, 4), size=pick(64, 32))
result.save(out)
print(f"rendered channels 0-7 of layer '2' -> {out}/grid.png")

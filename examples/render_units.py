"""Render 8 channels of a middle layer of the embedded EfficientNet-Lite0 and save a labelled grid.

    python examples/render_units.py [OUT]        # OUT defaults to out/render_units
"""

import sys

from _tiny import pick

import phosphene
from phosphene import objectives as obj

out = sys.argv[1] if len(sys.argv) > 1 else "out/render_units"
model = phosphene.load_model("efficientnet_lite0")
result = phosphene.render(model, obj.channel("_blocks.8", range(8)), param="fourier",
                          transforms="standard", steps=pick(256, 4), size=pick(224, 48))
result.save(out)                      # one PNG per channel, grid.png, render.json
for label, value in zip(result.labels, result.final.tolist()):
    print(f"{label:<14} {value:8.2f}")
print(f"-> {out}/grid.png")

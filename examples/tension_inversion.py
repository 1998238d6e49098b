"""What excites and what inhibits a unit in one image: E+/E- through an earlier layer, then the
+/- accentuations and inversions of the image's attribution.

    python examples/tension_inversion.py IMAGE [OUT]
"""

import sys

from _tiny import pick

import phosphene
from phosphene.attribution import attribute
from phosphene.inhibition.inversion import invert

if len(sys.argv) < 2:
    sys.exit(__doc__)
image, out = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "out/tension_inversion"
model = phosphene.load_model("efficientnet_lite0")
seed = phosphene.load_image(image, pick(224, 64))
target = "_blocks.9:5"
r = attribute(model, seed[None], target, ["_blocks.6"], maps=True)
layer = r.layers["_blocks.6"]
print(f"{target}: f {r.f.item():.2f}  E+ {layer.e_plus.item():.1f}  E- {layer.e_minus.item():.1f}")
result = invert(model, seed, target, "_blocks.6", steps=pick(256, 2))
result.save(out)                      # figure.png: seed with its phi map, +/- panels, unit visualization
print(f"-> {out}/figure.png")

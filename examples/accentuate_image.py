"""Accentuate a class in your own image: change it so that 'tench' (class 0) responds more while its
`_blocks.8` activations stay close to the original's.

    python examples/accentuate_image.py IMAGE [OUT]
"""

import sys

from _tiny import pick

import phosphene
from phosphene import objectives as obj

if len(sys.argv) < 2:
    sys.exit(__doc__)
image, out = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "out/accentuate_image"
model = phosphene.load_model("efficientnet_lite0")
seed = phosphene.load_image(image, pick(224, 48))
result = phosphene.accentuate(model, obj.class_logit(0), seed, reg_layer="_blocks.8", lam=[0.5, 2.0],
                              steps=pick(100, 2), crops=pick(16, 1))
result.save(out)                      # seed | accentuation | transparency | difference per lambda
for lam, before, after in zip(result.lams, result.f_before.tolist(), result.f_after.tolist()):
    print(f"lambda {lam:g}: tench logit {before:.2f} -> {after:.2f}")
print(f"-> {out}/figure.png")

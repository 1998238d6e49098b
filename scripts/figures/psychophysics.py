"""The psychophysics paper's figure (Klein, Brendel & Wichmann): matching accuracy per layer depth x
condition (natural exemplars vs feature visualizations) x images per unit {1, 3, 5}, here for a
machine observer (EfficientNet-Lite1, pooled penultimate features) on draft stimuli of
EfficientNet-Lite0 units (the pipeline of ``phosphene experiment stimuli --quality draft`` and
``phosphene experiment simulate``: `make_stimuli`, `simulate_experiment`).

    python scripts/figures/psychophysics.py --out out/figures/psychophysics [--size 112 --steps 32]

The same with the CLI: ``phosphene experiment stimuli --images DIR --quality draft --out S`` and
``phosphene experiment simulate S --participants 10 --trials-per-condition 6 --out M``.
Writes psychophysics.png (`analysis.plot`), the stimuli and responses in OUT/ and psychophysics.json.
"""

from __future__ import annotations

import time
from pathlib import Path

from _common import parser, sample_subset, write
from PIL import Image

import phosphene
from phosphene.presets import preset
from phosphene.psychophysics.observer import MachineObserver
from phosphene.psychophysics.pipeline import TrialDesign, UnitChoice, make_stimuli, simulate_experiment
from phosphene.psychophysics.stimuli import StimulusSettings


def main() -> None:
    draft = preset("experiment stimuli", "draft")
    options = parser(__doc__, size=draft["viz_size"], steps=draft["steps"])
    options.add_argument("--images", type=int, default=200, help="exemplars from the first N sample images")
    options.add_argument("--units-per-layer", type=int, default=draft["units_per_layer"])
    options.add_argument("--observer", default="efficientnet_lite1")
    options.add_argument("--participants", type=int, default=10)
    options.add_argument("--trials-per-condition", type=int, default=6)
    args = options.parse_args()
    model = phosphene.load_model(args.model, device="cpu")
    started = time.perf_counter()
    out = Path(args.out)
    folder = sample_subset(args, args.images, out / "images")
    settings = StimulusSettings(visualizations=draft["visualizations"], steps=args.steps,
                                viz_size=args.size, image_size=args.size)
    stimuli, depths, units = make_stimuli(model, out / "stimuli", settings,
                                          UnitChoice(per_layer=args.units_per_layer), images=str(folder),
                                          progress=False)
    machine = MachineObserver(args.observer, device="cpu")
    conditions = simulate_experiment(stimuli, machine, args.participants,
                                     TrialDesign(trials_per_condition=args.trials_per_condition),
                                     out / "machine", progress=False)
    for c in conditions:
        print(f"{c.kind:<14} {c.depth:<7} {c.images_per_unit}  {c.accuracy:.3f} ({c.low:.3f}-{c.high:.3f})  "
              f"n {c.items}")
    write(args, "psychophysics", Image.open(out / "machine" / "accuracy.png"),
          {"layers": depths, "units": units, "conditions": [c.to_dict() for c in conditions]}, started)


if __name__ == "__main__":
    main()

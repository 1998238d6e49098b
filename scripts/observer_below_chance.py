"""Why can a machine observer match visualizations *below* chance? (docs/psychophysics.md)

Builds the tests' small stimulus set (100 sample images mined at 96 px; 3 units per layer, 6
exemplars and 3 visualizations each, 12 steps at 64 px), simulates participants, and prints per
depth: the accuracy, the 3 x 3 unit similarity matrix the observer sees (mean cosine of unit q's
visualizations, or second-half exemplars, to unit r's exemplars), the assignment that matrix implies,
and the accuracy that one assignment would score.

    python scripts/observer_below_chance.py ../shared/data/imagenet-samples --out /tmp/obs
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch

import phosphene
from phosphene.io.images import list_images
from phosphene.mining import run_mining
from phosphene.psychophysics import stimuli as st
from phosphene.psychophysics.observer import MachineObserver, best_assignment, simulate


def build(samples: Path, out: Path, units_per_layer: int, model) -> st.StimulusSet:
    folder = out / "images"
    folder.mkdir(parents=True, exist_ok=True)
    for path in list_images(samples)[::5]:
        if not (folder / path.name).exists():
            (folder / path.name).symlink_to(path)
    run = run_mining(model, ["_blocks.2", "_blocks.7", "_blocks.13"], folder, out / "run", k=16,
                     batch_size=50, num_workers=0, size=96, progress=False)
    depths = {"early": "_blocks.2", "middle": "_blocks.7", "late": "_blocks.13"}
    layer_units = st.pick_units(model, depths, units_per_layer, seed=0)
    exemplars = st.exemplars_from_run(run.root, layer_units, 6)
    settings = st.StimulusSettings(naturals=6, visualizations=3, steps=12, viz_size=64, image_size=64)
    return st.build_stimuli(model, out / f"stimuli{units_per_layer}", depths, layer_units, exemplars,
                            settings, progress=False)


def unit_matrix(observer: MachineObserver, stimuli: st.StimulusSet, units, kind: str) -> torch.Tensor:
    """(3, 3): mean cosine of unit q's queries (visualizations, or exemplars 4-6) to unit r's
    reference exemplars (1-3)."""
    def mean_embedding(paths):
        return observer.embed([stimuli.root / p for p in paths]).mean(0)

    queries = [mean_embedding(u.visualizations if kind == "visualization" else u.natural[3:])
               for u in units]
    refs = [mean_embedding(u.natural[:3]) for u in units]
    return torch.stack(queries) @ torch.stack(refs).T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--units-per-layer", type=int, default=3)
    parser.add_argument("--participants", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = phosphene.load_model("efficientnet_lite0", device="cpu")
    stimuli = build(args.samples, args.out, args.units_per_layer, model)
    observer = MachineObserver("efficientnet_lite1", size=96, device="cpu")
    rows = simulate(stimuli, observer, participants=args.participants, trials_per_condition=6,
                    images_per_unit=(1, 3), catch_trials=2, progress=False)
    for depth, units in stimuli.by_depth().items():
        for kind in ("exemplar", "visualization"):
            mine = [r for r in rows if r["depth"] == depth and r["kind"] == kind]
            accuracy = sum(r["correct"] for r in mine) / sum(r["items"] for r in mine)
            triples = list(itertools.combinations(units, 3))
            implied = []
            for triple in triples:
                matrix = unit_matrix(observer, stimuli, triple, kind)
                perm = best_assignment(matrix)
                implied.append(sum(int(p == q) for q, p in enumerate(perm)) / 3)
            line = f"{depth:<6} {kind:<13} accuracy {accuracy:.3f} over {len(mine)} trials"
            if len(triples) == 1:
                line += (f"; unit matrix {[[round(float(v), 3) for v in row] for row in matrix]}, "
                         f"best assignment {perm} -> {implied[0]:.3f}")
            else:
                mean = sum(implied) / len(implied)
                line += f"; {len(triples)} unit triples, mean implied accuracy {mean:.3f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()

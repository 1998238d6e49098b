"""Stage: each unit's polysemanticity score (`phosphene.polysemanticity`), from its top exemplars of
the run (by channel mean, as many as the report shows, at least 4), one truncated forward pass each.
Without scikit-learn, or with fewer than 4 exemplars, the record says why and the score is empty."""

from __future__ import annotations

from torch import nn

from ..polysemanticity import MIN_EXEMPLARS, score_unit
from ._api import PhospheneError, mining, progress_bar
from .config import ReportSettings
from .layout import LayerFiles

STAGE = "polysemanticity"


def polysemanticity(model: nn.Module, run: mining.MiningRun, layer: str, units: list[int],
                    settings: ReportSettings, files: LayerFiles, progress: bool | None) -> None:
    """Write the score record of every unit of ``units`` not done yet."""
    k = min(settings.k, run.k)
    for unit in progress_bar(files.pending(units, STAGE), desc=f"{layer} polysemanticity", unit="unit",
                             progress=progress):
        examples = run.top(layer, unit, k, by="mean")
        if len(examples) < MIN_EXEMPLARS:
            files.write(unit, STAGE, {"score": None, "reason": f"{len(examples)} exemplars, fewer than "
                                                              f"{MIN_EXEMPLARS}"})
            continue
        try:
            result = score_unit(model, run.load(examples), layer, unit)
        except PhospheneError as error:  # scikit-learn missing: say so on the page, keep building
            files.write(unit, STAGE, {"score": None, "reason": str(error)})
            continue
        files.write(unit, STAGE, result.to_dict())


def unit_score(files: LayerFiles, unit: int) -> float | None:
    """The unit's score, None when not computed (an older site, or no score)."""
    return files.read(unit, STAGE).get("score") if files.done(unit, STAGE) else None

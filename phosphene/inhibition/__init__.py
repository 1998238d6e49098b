"""What excites and what inhibits a unit: attribution, tension over a dataset, +/- inversion, atlases.

Submodules are imported on use (tension needs pyarrow, the atlas umap and jinja2).
"""

from ..attribution import AttributionResult, Attributor, Target, attribute, parse_target

__all__ = ["AttributionResult", "Attributor", "Target", "attribute", "parse_target"]

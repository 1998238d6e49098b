"""Many units, many machines: the Ray executor (`executor`) and a layer rendered in batches of units
(`layer_batches`), on one process or on Ray workers, with the same results."""

from .executor import Job, RayExecutor, RayUnavailableError, connect, import_ray
from .layer_batches import UnitBatch, plan_batches, render_batches

__all__ = ["Job", "RayExecutor", "RayUnavailableError", "UnitBatch", "connect", "import_ray", "plan_batches",
           "render_batches"]

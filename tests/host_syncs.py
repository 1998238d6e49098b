"""Count host synchronisations on the CPU: every op that would make a GPU wait for the host to read a
value.

Two nets, both active inside `count_syncs`:

- a ``TorchDispatchMode`` that sees every aten op, from Python or from inside torch: ``.item()``,
  ``float(t)``, ``bool(t)``, printing (``aten._local_scalar_dense``), and the ops whose output shape
  depends on values (``nonzero``, ``masked_select``, ``unique``, boolean indexing);
- patched ``Tensor.tolist``, ``.numpy``, ``.cpu`` (they read memory without an aten op), counted when
  phosphene calls them.

Not counted: torch.optim's step counter (a host tensor on every device unless the optimizer is
fused or capturable) and `HOST_READS`, reads of tensors that phosphene makes on the host on purpose
(faccent's integer crop boxes: drawn with a CPU generator on every device, so reading them never
waits for a device). On a GPU, ``torch.cuda.set_sync_debug_mode`` checks the same loops without exceptions.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections import Counter
from collections.abc import Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode

SYNC_OPS = ("_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique", "_unique2",
            "unique_consecutive", "unique_dim", "repeat_interleave")
HOST_METHODS = ("tolist", "numpy", "cpu")
HOST_READS = {("tolist", "phosphene.accentuation.boxes")}
IGNORED_FILES = ("torch/optim/",)


def _where() -> str | None:
    """The innermost phosphene frame of the current stack ("module:line"), None when the sync
    comes from torch.optim or phosphene is not on the stack."""
    stack = traceback.extract_stack()
    if any(part in frame.filename for frame in stack for part in IGNORED_FILES):
        return None
    for frame in reversed(stack):
        if "/phosphene/" in frame.filename and "/tests/" not in frame.filename:
            module = "phosphene." + frame.filename.split("/phosphene/", 1)[1][:-3].replace("/", ".")
            return f"{module}:{frame.lineno}"
    return None


class _SyncOps(TorchDispatchMode):
    def __init__(self, counts: Counter):
        super().__init__()
        self.counts = counts

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        bool_index = name == "index" and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] if len(args) > 1 else ()))
        value_repeats = name == "repeat_interleave" and isinstance(args[0], torch.Tensor) and (
            len(args) > 1 and isinstance(args[1], torch.Tensor) or args[0].dtype != torch.float32)
        if (name in SYNC_OPS and name != "repeat_interleave") or bool_index or value_repeats:
            where = _where()
            if where:
                self.counts[f"{name} at {where}"] += 1
        return func(*args, **kwargs)


@contextlib.contextmanager
def count_syncs() -> Iterator[Counter]:
    """Within the block, count host syncs caused by phosphene: {"op at module:line": calls}."""
    counts: Counter = Counter()
    originals = {name: getattr(torch.Tensor, name) for name in HOST_METHODS}

    def patched(name):
        def wrapper(self, *args, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith("phosphene") and (name, caller) not in HOST_READS:
                counts[f"{name} at {caller}:{sys._getframe(1).f_lineno}"] += 1
            return originals[name](self, *args, **kwargs)
        return wrapper

    for name in HOST_METHODS:
        setattr(torch.Tensor, name, patched(name))
    try:
        with _SyncOps(counts):
            yield counts
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)

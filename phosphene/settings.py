"""Settings objects: a call's settings come as one dataclass (``RenderConfig``, ``AccentuationConfig``,
``MiningPlan``, ...) plus keyword overrides of its fields.

``with_overrides(RenderConfig, config, {"steps": 64})`` is ``config`` (or the defaults) with the
overrides applied; a key that is not a field is a one-line `PhospheneError` naming the close matches,
so ``render(model, obj, stpes=64)`` says ``did you mean steps?`` instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any, TypeVar

from .errors import PhospheneError

Config = TypeVar("Config")


def field_names(cls: type) -> list[str]:
    """The field names of the dataclass ``cls``, in order."""
    return [f.name for f in dataclasses.fields(cls)]


def check_keys(cls: type, keys, call: str, also: tuple[str, ...] = ()) -> None:
    """`PhospheneError` for the first key of ``keys`` that is neither a field of ``cls`` nor in
    ``also`` (other keywords ``call`` takes), naming the close matches."""
    known = field_names(cls) + list(also)
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(close)}?" if close else f"the settings are {', '.join(known)}"
            raise PhospheneError(f"{call}() got an unknown setting {key!r}; {hint}")


def with_overrides(cls: type[Config], config: Config | None, overrides: Mapping[str, Any],
                   call: str) -> Config:
    """``config`` (None: ``cls()``) with ``overrides`` replacing its fields (see the module doc)."""
    if config is None:
        config = cls()
    elif not isinstance(config, cls):
        raise PhospheneError(f"{call}(): config must be a {cls.__name__}, not {type(config).__name__} "
                             f"(give the other arguments by keyword)")
    check_keys(cls, overrides, call)
    return dataclasses.replace(config, **overrides) if overrides else config

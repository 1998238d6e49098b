"""Report settings, their fingerprint, and the checks made before anything is written.

A site remembers the settings it was built with (``report.json``). Settings that change a picture
or a number are in the fingerprint; layers and units are not (they extend a site).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ._api import LayerNotFoundError, PhospheneError, UnitOutOfRangeError, mining

SITE_FILE = "report.json"
FORMAT = 1


class SiteMismatchError(PhospheneError):
    """An existing site was made with other settings (nothing is overwritten)."""


@dataclass(frozen=True)
class ReportSettings:
    """What a report is made with. Defaults give publication-quality pictures; ``steps=32`` and a small
    ``size`` give a quick look."""

    steps: int = 256  # optimization steps of the unit visualizations
    size: int = 224  # side of visualizations and accentuations
    diverse: int = 4  # visualizations per unit, made different by the diversity term
    diversity: float = 10.0  # weight of the diversity term (within each unit's group)
    param: str = "fourier"
    batch: int = 16  # units rendered per optimization
    k: int = 8  # top-k and bottom-k exemplars shown
    probe: int = 128  # dataset images for E+/E-, tension, selectivity and completeness
    mtis: int = 3  # most tense images shown per unit
    accent_steps: int = 64
    accent_crops: int = 8
    accent_top: int = 2  # accentuations in top exemplars
    accent_unrelated: int = 1  # ... and in unrelated images (f near the median)
    neighbours: int = 6
    atlas: bool = False  # an activation atlas on each layer page
    seed: int = 0
    accent_batch: int = 8  # seed images per accentuation call (memory; the pictures do not depend on it)

    def check(self) -> None:
        """Refuse settings that cannot make a report."""
        positive = ("steps", "size", "diverse", "batch", "k", "probe", "accent_steps", "accent_crops",
                    "accent_batch")
        bad = [name for name in positive if getattr(self, name) < 1]
        bad += [n for n in ("mtis", "accent_top", "accent_unrelated", "neighbours") if getattr(self, n) < 0]
        if bad:
            raise PhospheneError(f"report settings must be positive: {', '.join(bad)}")
        if self.size < 32:
            raise PhospheneError(f"--size {self.size} is too small (at least 32 px)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReportSettings:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# settings that change how the work is split, not a picture or a number: not in the fingerprint
NOT_FINGERPRINTED = ("accent_batch",)


def fingerprint_of(settings: ReportSettings, identity: dict[str, Any]) -> str:
    """SHA-256 (16 hex digits) of the settings (but `NOT_FINGERPRINTED`) and what the site is about
    (model, run images)."""
    kept = {k: v for k, v in settings.to_dict().items() if k not in NOT_FINGERPRINTED}
    text = json.dumps({"settings": kept, "identity": identity, "format": FORMAT}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_identity(run: mining.MiningRun, model_name: str, weights: str | None) -> dict[str, Any]:
    """What makes two sites comparable: the model, its weights file, and the run's image list."""
    weights_id = None
    if weights:
        path = Path(weights)
        weights_id = f"{path.name}:{path.stat().st_size}" if path.is_file() else str(weights)
    return {"model": model_name, "weights": weights_id, "k": run.k,
            "images": run.config.get("image_list_sha256"), "preprocessing": run.config["preprocessing"]}


def layer_slug(layer: str) -> str:
    """A folder name for a layer (``_blocks.8`` stays ``_blocks.8``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", layer)


def layer_channels(run: mining.MiningRun, layer: str) -> int:
    """Number of units of ``layer`` in the mining run."""
    if layer not in run.layers:
        raise LayerNotFoundError(layer, run.layers)
    shape = run.manifest.get("layer_shapes", {}).get(layer)
    if shape:
        return int(shape[0])
    return int(run.table().to_pandas().query("layer == @layer")["unit"].max()) + 1


def resolve_units(run: mining.MiningRun, layers: list[str], units: list[int] | None) -> dict[str, list[int]]:
    """Units per layer (all of each layer by default); one-line errors for bad layers or units."""
    if not layers:
        raise PhospheneError("give at least one layer (--layers L1,L2)")
    chosen = {}
    for layer in layers:
        channels = layer_channels(run, layer)
        if units is None:
            chosen[layer] = list(range(channels))
            continue
        bad = [u for u in units if not 0 <= u < channels]
        if bad:
            raise UnitOutOfRangeError(f"unit {bad[0]} out of range: {layer} has {channels} units "
                                      f"(0-{channels - 1})")
        chosen[layer] = sorted(set(units))
    return chosen


def check_site(out: Path, fingerprint: str, settings: ReportSettings) -> dict[str, Any] | None:
    """The existing site record, None for a new site; refuses a file or another site's settings."""
    if out.exists() and not out.is_dir():
        raise PhospheneError(f"--out {out} is a file, not a folder")
    record_path = out / SITE_FILE
    if not record_path.is_file():
        if out.is_dir() and any(out.iterdir()):
            raise PhospheneError(f"--out {out} is a non-empty folder that holds no report")
        return None
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        raise PhospheneError(f"{record_path} is unreadable; remove the site or use another --out") from None
    if record.get("fingerprint") != fingerprint:
        old = record.get("settings", {})
        differ = [f"{k} {old.get(k)!r}->{v!r}" for k, v in settings.to_dict().items()
                  if old.get(k) != v and k not in NOT_FINGERPRINTED]
        what = ", ".join(differ) if differ else "the model, weights or mining run"
        raise SiteMismatchError(f"{out} was made with other settings ({what}); use another --out or "
                                "the same settings")
    return record

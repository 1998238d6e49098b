"""``phosphene report``: a browsable static site that explains every unit of a layer.

    from phosphene.report import build_report, ReportSettings
    build_report("runs/samples", ["_blocks.8"], "site/", units=range(16),
                 settings=ReportSettings(steps=64, size=128))

Modules: `config` (settings, fingerprint, input checks), `layout` (where files go, stage records),
`units` (visualizations, batched `render`), `exemplars` (from the mining run), `inhibition` (E⁺/E⁻,
tension, MTIs), `accentuations`, `neighbours`, `site` (jinja2 pages), `build` (the stages in order),
`serve` (a static file server). Other phosphene modules are imported only through `_api`.
"""

from __future__ import annotations

from .build import ReportResult, build_report
from .config import ReportSettings, SiteMismatchError

__all__ = ["ReportResult", "ReportSettings", "SiteMismatchError", "build_report"]

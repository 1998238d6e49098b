"""`UnitBrowser`: the units of a mining run in a notebook, each computed on demand as a report unit.

Pick a layer and a unit and press *show*: the unit's report stages (visualizations, exemplars,
excitation/inhibition and most tense images, accentuations: `phosphene.report`) run for that unit
only, with progress bars, into a site folder, and the unit's page (`report.UnitPage`) appears below.
Units already in the site show at once, so pointing ``site`` at a site built by ``phosphene report``
browses it without recomputing. *accentuate* accentuates the unit in a chosen image (one of the
unit's exemplars or most tense images, or any file) with the report's settings and a λ of your choice.
"""

from __future__ import annotations

import html
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from IPython.display import display
from torch import nn

from .. import mining
from ..accentuation.accentuate import AccentuationResult
from ..errors import PhospheneError
from ..models import load_model
from ..report import ReportSettings, build_report
from ..report.accentuations import accentuate_units, load_seed
from ..report.config import SITE_FILE, layer_channels, resolve_units
from ..report.unit_view import UnitPage

# a unit in about a minute on a 2-core CPU (the report's defaults are publication-sized)
QUICK = ReportSettings(steps=64, size=128, diverse=3, probe=64, k=6, mtis=3, accent_steps=32, accent_crops=4,
                       accent_top=1, accent_unrelated=1)


def site_settings(site: Path) -> ReportSettings | None:
    """The settings an existing report site was built with (None for a new or empty folder)."""
    record = site / SITE_FILE
    if not record.is_file():
        return None
    return ReportSettings.from_dict(json.loads(record.read_text()).get("settings", {}))


def image_choices(page: UnitPage, run: mining.MiningRun) -> list[tuple[str, str]]:
    """(label, path) of the images a unit page names: top/bottom exemplars, most tense images."""
    paths = run.image_paths()
    ex, inh = page.data["exemplars"], page.data["inhibition"]
    choices = [(f"top {e['rank']} · {e['value']:.2f}", str(paths[e["index"]])) for e in ex["top"]]
    choices += [(f"most tense {i} · T {m['tension']:.2f}", str(paths[m["index"]]))
                for i, m in enumerate(inh["mtis"])]
    choices += [(f"bottom {e['rank']} · {e['value']:.2f}", str(paths[e["index"]])) for e in ex["bottom"]]
    return choices


class UnitBrowser:
    """A widget over the mining run ``run`` (a folder or a `MiningRun`).

    Args:
        model: the run's model (a module, a name; default: loaded from the run's model name).
        site: the report site the units go to (default: a new temporary folder); an existing site's
            settings are used unless ``settings`` is given.
        settings: `ReportSettings` of the computed units (default: `QUICK`).
    """

    def __init__(self, run: str | Path | mining.MiningRun, model: nn.Module | str | None = None,
                 site: str | Path | None = None, settings: ReportSettings | None = None,
                 device: str | None = None):
        self.run = run if isinstance(run, mining.MiningRun) else mining.open(run)
        self.model = model if isinstance(model, nn.Module) else load_model(model or self.run.model_name,
                                                                          device=device)
        self.site = Path(site) if site is not None else Path(tempfile.mkdtemp(prefix="phosphene-units-"))
        self.settings = settings or site_settings(self.site) or QUICK
        self.page: UnitPage | None = None
        self.accentuation: AccentuationResult | None = None
        self._build_widgets()

    def _build_widgets(self) -> None:
        layer = self.run.layers[0]
        self.layer = widgets.Dropdown(options=self.run.layers, value=layer, description="layer")
        self.unit = widgets.BoundedIntText(value=0, min=0, max=layer_channels(self.run, layer) - 1,
                                           description="unit", layout=widgets.Layout(width="180px"))
        self.show_button = widgets.Button(description="show", button_style="primary", icon="eye")
        self.status = widgets.HTML()
        self.progress = widgets.Output()
        self.page_html = widgets.HTML()
        self.image = widgets.Dropdown(options=[], description="image", layout=widgets.Layout(width="320px"))
        self.path = widgets.Text(placeholder="or the path of any image", layout=widgets.Layout(width="320px"))
        self.lam = widgets.BoundedFloatText(value=1.0, min=0.0, max=1e4, step=0.5, description="λ",
                                            layout=widgets.Layout(width="160px"))
        self.accent_button = widgets.Button(description="accentuate", icon="magic", disabled=True)
        self.accent_output = widgets.Output()
        self.layer.observe(self._on_layer, names="value")
        self.show_button.on_click(lambda _: self._guarded(self.select))
        self.accent_button.on_click(lambda _: self._guarded(self.accentuate))
        self.widget = widgets.VBox([
            widgets.HBox([self.layer, self.unit, self.show_button]), self.status, self.progress,
            self.page_html,
            widgets.HBox([self.image, self.path, self.lam, self.accent_button]), self.accent_output])

    def _repr_mimebundle_(self, **kwargs) -> dict[str, Any]:
        return self.widget._repr_mimebundle_(**kwargs)

    def _on_layer(self, change: dict) -> None:
        self.unit.max = layer_channels(self.run, change["new"]) - 1

    def _guarded(self, action: Callable[[], Any]) -> None:
        """Run a button's action; a `PhospheneError` becomes a one-line status, not a traceback."""
        try:
            action()
        except PhospheneError as exc:
            self.status.value = f'<span style="color:#b00020">{html.escape(str(exc))}</span>'

    def select(self, layer: str | None = None, unit: int | None = None) -> UnitPage:
        """Show ``unit`` of ``layer`` (default: the widgets' choice), computing what the site lacks."""
        layer = self.layer.value if layer is None else layer
        unit = int(self.unit.value if unit is None else unit)
        resolve_units(self.run, [layer], [unit])  # a one-line error for a layer or unit the run lacks
        self.layer.value, self.unit.value = layer, unit
        self.status.value = f"computing {layer}:{unit} (what the site {self.site} does not hold yet) …"
        with self.progress:
            build_report(self.run.root, [layer], self.site, [unit], model=self.model, settings=self.settings,
                         progress=True)
        self.progress.clear_output()
        self.page = UnitPage(self.site, layer, unit)
        self.page_html.value = self.page._repr_html_()
        choices = image_choices(self.page, self.run)
        self.image.options = choices
        self.image.value = choices[0][1] if choices else None
        self.accent_button.disabled = False
        self.status.value = f"{layer}:{unit} · site {self.site}"
        return self.page

    def accentuate(self, image: str | Path | None = None, lam: float | None = None) -> AccentuationResult:
        """Accentuate the shown unit in ``image`` (default: the path typed, else the image chosen) with
        the report's settings, regularized at the unit's attribution layer."""
        if self.page is None:
            raise PhospheneError("show a unit first")
        chosen = image or self.path.value.strip() or self.image.value
        if not chosen or not Path(chosen).is_file():
            raise PhospheneError(f"no image file at {chosen!r}" if chosen else "choose or type an image")
        path = Path(chosen)
        lam = float(self.lam.value if lam is None else lam)
        self.lam.value = lam
        seed = load_seed(path, self.run, self.settings.size)
        reg = self.page.data["inhibition"]["attr_layer"]
        self.status.value = f"accentuating {self.page.layer}:{self.page.unit} in {path.name} (λ = {lam:g}) …"
        with self.progress:
            result = accentuate_units(self.model, self.page.layer, [self.page.unit], seed[None], reg,
                                      self.settings, lam=lam, progress=True)
        self.progress.clear_output()
        self.accent_output.clear_output()
        with self.accent_output:
            display(result)
        self.accentuation = result
        self.status.value = f"{self.page.layer}:{self.page.unit} accentuated in {path.name}"
        return result

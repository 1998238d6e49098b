"""Accuracy per condition with Wilson intervals, and the poster's plot.

The unit of accuracy is the *item*: each trial has 3 query groups, each matched right or wrong, so
chance is 1/3 (Klein et al.). Conditions are (source, kind, depth, images per unit); catch trials
are summarized apart (``kind == "catch"``) as the attention check. Items of one trial are not
independent, so the Wilson interval on items is somewhat optimistic; it is what the poster shows.

Inputs: the experiment's SQLite file, a CSV export, or a machine observer's CSV; all share
`storage.RESPONSE_COLUMNS`, so human and machine results plot side by side.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import PhospheneError
from ..io.display import new_figure
from .stimuli import DEPTHS
from .storage import RESPONSE_COLUMNS, ExperimentDB, rows_to_csv
from .trials import KINDS, UNITS_PER_TRIAL

CHANCE = 1 / UNITS_PER_TRIAL


def wilson(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% for z=1.96); (0, 1) when total is 0."""
    if total <= 0:
        return 0.0, 1.0
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    # clamp: in floating point centre + half can fall a hair below p = 1 (and centre - half above 0)
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


@dataclass
class Condition:
    """Accuracy of one condition: ``correct`` of ``items`` query groups matched right."""

    source: str
    kind: str
    depth: str
    images_per_unit: int
    trials: int
    correct: int
    items: int
    accuracy: float
    low: float
    high: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_responses(path: str | Path) -> list[dict[str, Any]]:
    """Response rows from a SQLite database (``.db``, ``.sqlite``, ``.sqlite3``) or a CSV file."""
    path = Path(path)
    if not path.is_file():
        raise PhospheneError(f"no such results file: {path}")
    if path.suffix.lower() in (".db", ".sqlite", ".sqlite3"):
        return ExperimentDB(path, create=False).responses()
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = {"source", "kind", "depth", "images_per_unit", "correct", "items"} - set(
                reader.fieldnames or [])
            if missing:
                raise PhospheneError(f"{path} is not a responses CSV (missing columns: "
                                     f"{sorted(missing)})")
            return list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise PhospheneError(f"{path} is not a responses CSV ({type(exc).__name__})") from None


def write_responses(rows: Iterable[dict[str, Any]], path: str | Path) -> None:
    """Rows as a CSV with `RESPONSE_COLUMNS`."""
    Path(path).write_text(rows_to_csv(list(rows)))


def summarize(rows: Iterable[dict[str, Any]]) -> list[Condition]:
    """One `Condition` per (source, kind, depth, images per unit), in a fixed order."""
    groups: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in rows:
        key = (str(row["source"]), str(row["kind"]), str(row["depth"]), int(row["images_per_unit"]))
        groups[key][0] += 1
        groups[key][1] += int(row["correct"])
        groups[key][2] += int(row["items"])
    kind_order = {k: i for i, k in enumerate((*KINDS, "catch"))}
    depth_order = {d: i for i, d in enumerate(DEPTHS)}

    def order(key: tuple) -> tuple:
        return (key[0], kind_order.get(key[1], 9), depth_order.get(key[2], 9), key[3])

    result = []
    for key in sorted(groups, key=order):
        trials, correct, items = groups[key]
        low, high = wilson(correct, items)
        result.append(Condition(*key, trials, correct, items, correct / items if items else 0.0,
                                low, high))
    return result


def write_summary(conditions: Sequence[Condition], path: str | Path) -> None:
    """The summary as CSV (one row per condition)."""
    fields = list(Condition.__dataclass_fields__)
    with Path(path).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for c in conditions:
            row = c.to_dict()
            for f in ("accuracy", "low", "high"):
                row[f] = f"{row[f]:.4f}"
            writer.writerow(row)


def summary_table(conditions: Sequence[Condition]) -> str:
    """A Markdown table of the non-catch conditions."""
    lines = ["| source | trial type | layer | images/unit | trials | accuracy | 95% Wilson |",
             "|---|---|---|---|---|---|---|"]
    for c in conditions:
        lines.append(f"| {c.source} | {c.kind} | {c.depth} | {c.images_per_unit} | {c.trials} | "
                     f"{c.accuracy:.3f} | {c.low:.3f}-{c.high:.3f} |")
    return "\n".join(lines)


def gap_table(conditions: Sequence[Condition]) -> str:
    """A Markdown table of exemplar minus visualization accuracy per source and depth, for each
    images-per-unit count and pooled over them (items pooled)."""
    cells = {(c.source, c.kind, c.depth, c.images_per_unit): c for c in conditions}
    counts = sorted({c.images_per_unit for c in conditions if c.kind in KINDS})
    lines = ["| source | layer | " + " | ".join(f"gap n={n}" for n in counts) + " | gap pooled |",
             "|---|---|" + "---|" * (len(counts) + 1)]
    for source in sorted({c.source for c in conditions}):
        for depth in DEPTHS:
            gaps, pooled = [], {kind: [0, 0] for kind in KINDS}
            for n in counts:
                pair = [cells.get((source, kind, depth, n)) for kind in KINDS]
                gaps.append(f"{pair[0].accuracy - pair[1].accuracy:+.3f}" if all(pair) else "")
                for kind, c in zip(KINDS, pair):
                    if c is not None:
                        pooled[kind][0] += c.correct
                        pooled[kind][1] += c.items
            if not any(gaps):
                continue
            rates = [k / n if n else 0.0 for k, n in pooled.values()]
            lines.append(f"| {source} | {depth} | " + " | ".join(gaps) + f" | {rates[0] - rates[1]:+.3f} |")
    return "\n".join(lines)


KIND_COLOURS = {"exemplar": "#1f77b4", "visualization": "#d62728"}
SOURCE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
_STYLES, _MARKERS = ("-", "--", ":", "-."), ("o", "s", "^", "D")


def line_look(source_index: int, kind: str, sources: int) -> dict[str, Any]:
    """Matplotlib style of one line of `plot`: up to two sources, a colour per trial kind and a line
    style per source; more sources, a colour (and marker) per source, solid for natural exemplars and
    dashed with open markers for visualizations."""
    marker = _MARKERS[source_index % len(_MARKERS)]
    if sources > 2:
        exemplar = kind == "exemplar"
        return {"color": SOURCE_COLOURS[source_index % len(SOURCE_COLOURS)], "marker": marker,
                "linestyle": "-" if exemplar else "--", "markerfacecolor": None if exemplar else "white"}
    return {"color": KIND_COLOURS[kind], "linestyle": _STYLES[source_index % len(_STYLES)],
            "marker": marker}


def plot(conditions: Sequence[Condition], path: str | Path, title: str | None = None) -> None:
    """The poster's figure: accuracy vs layer depth, one panel per images-per-unit, natural exemplars
    vs visualizations as colours, sources (human, machine...) as line styles; chance dashed. With
    more than two sources (units and several dictionaries) the roles swap, so that each source stays
    legible: a colour per source, solid for natural exemplars, dashed for visualizations."""
    main = [c for c in conditions if c.kind in KINDS]
    if not main:
        raise PhospheneError("no exemplar or visualization responses to plot")
    counts = sorted({c.images_per_unit for c in main})
    sources = sorted({c.source for c in main})
    depths = [d for d in DEPTHS if any(c.depth == d for c in main)]
    names = {"exemplar": "natural exemplars", "visualization": "feature visualizations"}
    many = len(sources) > 2
    step = 0.09 if many else 0.06
    fig = new_figure((3.6 * len(counts), 3.6))
    axes = fig.subplots(1, len(counts), sharey=True, squeeze=False)
    for ax, n in zip(axes[0], counts):
        for si, source in enumerate(sources):
            for kind in KINDS:
                cells = {c.depth: c for c in main
                         if c.source == source and c.kind == kind and c.images_per_unit == n}
                xs = [i + (si - (len(sources) - 1) / 2) * step for i, d in enumerate(depths) if d in cells]
                if not xs:
                    continue
                ys = [cells[d].accuracy for d in depths if d in cells]
                err = [[max(0.0, cells[d].accuracy - cells[d].low) for d in depths if d in cells],
                       [max(0.0, cells[d].high - cells[d].accuracy) for d in depths if d in cells]]
                label = f"{names[kind]}" + (f" ({source})" if len(sources) > 1 else "")
                ax.errorbar(xs, ys, yerr=err, capsize=3, label=label,
                            **line_look(si, kind, len(sources)))
        ax.axhline(CHANCE, color="grey", linestyle="--", linewidth=1, label="chance (1/3)")
        ax.set_xticks(range(len(depths)), depths)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{n} image{'s' if n > 1 else ''} per unit")
        ax.set_xlabel("layer")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("proportion correct (95% Wilson)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4 if many else 3),
               frameon=False, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.08 + 0.04 * (len(labels) > 3) + 0.04 * (len(labels) > 6), 1, 1))
    fig.savefig(path, dpi=120)


def split_label(given: str | Path) -> tuple[str | None, Path]:
    """``LABEL=PATH`` -> (LABEL, PATH); a plain path (or an existing file whose name has a ``=``) ->
    (None, path). The label replaces the file's ``source`` column, so two runs of one observer (units
    and dictionary atoms, two stimulus sets) become two sources side by side."""
    text = str(given)
    if isinstance(given, Path) or Path(text).is_file() or "=" not in text:
        return None, Path(text)
    label, _, path = text.partition("=")
    if not label.strip():
        raise PhospheneError(f"empty label in {text!r} (write LABEL=PATH)")
    return label.strip(), Path(path)


def analyze(inputs: Sequence[str | Path], out: str | Path, title: str | None = None
            ) -> list[Condition]:
    """Summarize one or more result files into ``out/summary.csv`` and ``out/accuracy.png``; an
    input ``LABEL=PATH`` is shown as the source LABEL (`split_label`)."""
    rows: list[dict[str, Any]] = []
    for given in inputs:
        label, path = split_label(given)
        file_rows = load_responses(path)
        if label is not None:
            file_rows = [{**row, "source": label} for row in file_rows]
        rows.extend(file_rows)
    if not rows:
        raise PhospheneError("no responses in " + ", ".join(map(str, inputs)))
    conditions = summarize(rows)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_summary(conditions, out / "summary.csv")
    plot(conditions, out / "accuracy.png", title)
    return conditions


__all__ = ["CHANCE", "Condition", "RESPONSE_COLUMNS", "analyze", "gap_table", "line_look", "load_responses",
           "plot", "split_label", "summarize", "summary_table", "wilson", "write_responses", "write_summary"]

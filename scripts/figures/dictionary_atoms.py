"""Learned directions next to units (the inhibition paper's Fig. 2, for dictionaries): the atoms of
``_blocks.8`` that carry the most activation energy for k-means, NMF and a TopK sparse autoencoder,
and the layer's units with the most activation energy. Per row: the feature visualization (red frame,
its objective value under it) and the top exemplars of the sample images (their values), all by the
mean over positions of ``<a, atom>`` (a unit: its channel mean).

    python scripts/figures/dictionary_atoms.py --out out/figures/dictionary_atoms [--size 128 --steps 64]

One activation sample (`sample_activations`, the `phosphene dictionary` defaults) is fitted by the
three methods (`fit_dictionary`; the files are written to OUT, so ``phosphene atoms FILE IMAGES`` draws
any of them as an atom sheet), the visualizations are one render batch (`Dictionary.objective` per
atom, `objectives.channel` for the units, `objectives.stack`), and the exemplars come from one pass
over the images (per image the layer's channel means; an atom's mean over positions is their dot
product with the atom). Energy: an atom's share of Σ|c_k|²|component_k|² (the dictionary's
``energy``), a unit's share of Σ_c mean(a_c²) over the sampled vectors. Writes dictionary_atoms.png and
dictionary_atoms.json (the rows, the values and how many visualizations beat their best image).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from _common import parser, samples_dir, write
from PIL import Image, ImageDraw

import phosphene
from phosphene import objectives as obj
from phosphene.dictionary import DictionarySettings, fit_dictionary, sample_activations
from phosphene.dictionary.learn import default_path
from phosphene.io.display import _font
from phosphene.io.images import list_images, to_uint8
from phosphene.layers.tap import LayerTap
from phosphene.mining.dataset import Preprocessing, batch_loader, decode_image
from phosphene.models.preprocess import spec_for

TITLES = {"units": "units (channels)", "kmeans": "k-means atoms", "nmf": "NMF atoms",
          "topk": "TopK SAE atoms"}


@dataclass
class Row:
    """One row of the figure: a unit or an atom (``index``), its ``direction`` in the layer's channel
    space (a one-hot vector for a unit), its energy share, its heaviest units (atoms) and, once
    measured, the visualization's value, the top exemplars (indices into the image list) and values."""

    kind: str
    index: int
    direction: np.ndarray
    energy: float
    units: list[tuple[int, float]]
    visual_value: float = float("nan")
    exemplars: tuple[list[int], list[float]] = ((), ())

    @property
    def beats_best_image(self) -> bool:
        return bool(self.exemplars[1]) and self.visual_value > self.exemplars[1][0]


def top_units(vectors: np.ndarray, count: int) -> list[tuple[int, float]]:
    """The ``count`` channels with the largest share of Σ_c mean(a_c²) over ``vectors`` (n, C):
    [(channel, share)], largest first."""
    energy = np.square(vectors.astype(np.float64)).mean(0)
    share = energy / max(energy.sum(), 1e-30)
    order = np.argsort(-share, kind="stable")[:count]
    return [(int(c), float(share[c])) for c in order]


def top_exemplars(channel_means: np.ndarray, directions: np.ndarray, k: int
                  ) -> list[tuple[list[int], list[float]]]:
    """Per direction (R, C): the ``k`` images (rows of ``channel_means`` (N, C)) with the largest
    ``<channel mean, direction>`` (= the mean over positions of <a, direction>), and those values."""
    values = channel_means.astype(np.float64) @ directions.astype(np.float64).T  # (N, R)
    found = []
    for column in values.T:
        order = np.argsort(-column, kind="stable")[:k]
        found.append(([int(i) for i in order], [float(column[i]) for i in order]))
    return found


def image_channel_means(model: torch.nn.Module, layer: str, paths: Sequence[Path], prep: Preprocessing,
                        batch_size: int = 32) -> np.ndarray:
    """(N, C): each image's mean over positions of the layer's channels (read with ``prep``)."""
    means = np.zeros((len(paths), 0), dtype=np.float64)
    with LayerTap(model, [layer], truncate=True) as tap, torch.inference_mode():
        for batch in batch_loader(paths, prep, batch_size, num_workers=1):
            if len(batch.indices):
                acts = tap(batch.images.float().div_(255))[layer].float()
                if not means.shape[1]:
                    means = np.full((len(paths), acts.shape[1]), -np.inf)  # unreadable images never win
                means[batch.indices.numpy()] = acts.flatten(2).mean(2).double().numpy()
    return means


def compose(blocks: dict[str, list[Row]], visuals: dict[str, list[torch.Tensor]], paths: Sequence[Path],
            prep: Preprocessing, titles: dict[str, str], note: str, thumb: int = 96) -> Image.Image:
    """The figure: blocks (units, then each method) in a 2-column grid; per row a label (what it is,
    energy share, heaviest units), the visualization (red frame, its value in red) and the exemplars
    (their values)."""
    label_w, pad, text_h, title_h, gap = 118, 4, 16, 26, 22
    k = max((len(r.exemplars[0]) for rows in blocks.values() for r in rows), default=0)
    block_w = label_w + (k + 1) * (thumb + pad) + pad
    rows_per = max(len(rows) for rows in blocks.values())
    block_h = title_h + rows_per * (thumb + text_h + pad)
    columns = min(2, len(blocks))
    grid_rows = -(-len(blocks) // columns)
    note_h = 40
    canvas = Image.new("RGB", (columns * block_w + (columns - 1) * gap + 2 * pad,
                               grid_rows * block_h + (grid_rows - 1) * gap // 2 + note_h + pad), "white")
    draw = ImageDraw.Draw(canvas)
    bold, regular, small = _font(15, bold=True), _font(12), _font(11)
    red, grey = (200, 40, 40), (70, 70, 70)
    thumbs: dict[int, Image.Image] = {}
    for b, (name, rows) in enumerate(blocks.items()):
        x0 = pad + (b % columns) * (block_w + gap)
        y0 = (b // columns) * (block_h + gap // 2)
        draw.text((x0, y0 + 4), titles[name], fill="black", font=bold)
        for r, row in enumerate(rows):
            y = y0 + title_h + r * (thumb + text_h + pad)
            head = f"unit {row.index}" if row.kind == "units" else f"atom {row.index}"
            draw.text((x0, y + 2), head, fill="black", font=_font(13, bold=True))
            draw.text((x0, y + 20), f"energy {100 * row.energy:.1f}%", fill=grey, font=regular)
            if row.units:
                draw.text((x0, y + 38), "heaviest units", fill=grey, font=small)
                for i, (unit, weight) in enumerate(row.units[:3]):
                    draw.text((x0, y + 52 + 13 * i), f"{unit}: {weight:+.2f}", fill=grey, font=small)
            x = x0 + label_w
            picture = Image.fromarray(to_uint8(visuals[name][r])).convert("RGB").resize((thumb, thumb))
            canvas.paste(picture, (x, y))
            draw.rectangle([x - 2, y - 2, x + thumb + 1, y + thumb + 1], outline=red, width=2)
            draw.text((x + 1, y + thumb + 2), f"vis {row.visual_value:.1f}", fill=red,
                      font=_font(12, bold=True))
            x += thumb + 2 * pad
            for index, value in zip(*row.exemplars):
                if index not in thumbs:
                    thumbs[index] = Image.fromarray(decode_image(paths[index], prep).transpose(1, 2, 0)
                                                    ).resize((thumb, thumb))
                canvas.paste(thumbs[index], (x, y))
                draw.text((x + 1, y + thumb + 2), f"{value:.1f}", fill=grey, font=regular)
                x += thumb + pad
    for i, line in enumerate(note.split("\n")[:2]):
        draw.text((pad, canvas.size[1] - note_h + 4 + 17 * i), line, fill=grey, font=regular)
    return canvas


def main() -> None:
    options = parser(__doc__, size=128, steps=64)
    options.add_argument("--layer", default="_blocks.8")
    options.add_argument("--methods", default="kmeans,nmf,topk")
    options.add_argument("--atoms", type=int, default=16, help="atoms per dictionary")
    options.add_argument("--rows", type=int, default=5, help="atoms (units) shown per block")
    options.add_argument("--k", type=int, default=4, help="exemplars per row")
    options.add_argument("--images", type=int, default=500, help="the first N sample images")
    options.add_argument("--epochs", type=int, default=DictionarySettings.epochs, help="SAE epochs")
    options.add_argument("--thumb", type=int, default=96)
    args = options.parse_args()
    torch.set_num_threads(1)
    model = phosphene.load_model(args.model, device="cpu")
    folder = Path(args.samples) if args.samples else samples_dir()
    paths = list_images(folder)[:args.images]
    if not paths:
        raise SystemExit(f"no sample images in {folder} (--samples or PHOSPHENE_SHARED)")
    started = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    image_folder = folder
    if len(paths) < len(list_images(folder)):  # the first N: a folder of links, so the verbs read only them
        image_folder = out / "images"
        image_folder.mkdir(exist_ok=True)
        for path in paths:
            if not (image_folder / path.name).exists():
                (image_folder / path.name).symlink_to(Path(path).resolve())
    base = DictionarySettings(epochs=args.epochs)
    sample = sample_activations(model, args.layer, image_folder, per_image=base.per_image,
                                max_vectors=base.max_vectors, seed=base.seed, progress=False)
    blocks: dict[str, list[Row]] = {"units": [
        Row("units", c, np.eye(sample.vectors.shape[1], dtype=np.float32)[c], share, [])
        for c, share in top_units(sample.vectors, args.rows)]}
    titles = {"units": f"{args.layer}: {TITLES['units']}"}
    record: dict = {"vectors": len(sample.vectors), "images": sample.n_used, "dictionaries": {}}
    objectives = [obj.channel(args.layer, [r.index for r in blocks["units"]])]
    for method in args.methods.split(","):
        settings = DictionarySettings(method=method, atoms=args.atoms, epochs=args.epochs)
        d = fit_dictionary(sample, settings, args.layer, model.name)
        path = d.save(default_path(out, args.layer, d.name))
        atoms = d.by_energy()[:args.rows]
        blocks[method] = [Row(method, a, d.atoms[a].numpy(), float(d.energy[a]), d.top_units(a, 3))
                          for a in atoms]
        titles[method] = (f"{TITLES.get(method, method)} ({args.atoms}; R² held-out "
                          f"{d.metrics['r2_held_out']:.2f})")
        objectives.append(d.objective(atoms))
        record["dictionaries"][method] = {"file": str(path), "metrics": d.metrics, "atoms": atoms}
        print(f"{method}: R² held-out {d.metrics['r2_held_out']:.3f}, top atoms {atoms}", flush=True)
    result = phosphene.render(model, obj.stack(objectives), steps=args.steps, size=args.size, progress=False)
    prep = Preprocessing(model.side(None), spec_for(model).crop_fraction)
    means = image_channel_means(model, args.layer, paths, prep)
    visuals: dict[str, list[torch.Tensor]] = {}
    position = 0
    for name, rows in blocks.items():
        found = top_exemplars(means, np.stack([r.direction for r in rows]), args.k)
        for row, exemplars in zip(rows, found):
            row.visual_value = float(result.final[position])
            row.exemplars = exemplars
            visuals.setdefault(name, []).append(result.images[position])
            position += 1
    beaten = {name: sum(r.beats_best_image for r in rows) for name, rows in blocks.items()}
    total = sum(len(rows) for rows in blocks.values())
    note = (f"{model.name}, {len(paths)} sample images at {prep.size} px; visualizations {args.size} px, "
            f"{args.steps} steps. Values: mean over positions of <a, atom> (units: channel mean).\n"
            f"The visualization beats the best image for {sum(beaten.values())} of {total} rows.")
    figure = compose(blocks, visuals, paths, prep, titles, note, args.thumb)
    record["rows"] = {name: [{"index": r.index, "energy": r.energy, "visual": r.visual_value,
                              "exemplars": [str(paths[i].name) for i in r.exemplars[0]],
                              "values": list(r.exemplars[1]), "beats_best_image": r.beats_best_image}
                             for r in rows] for name, rows in blocks.items()}
    record["beaten"] = {**beaten, "total": sum(beaten.values()), "of": total}
    print(f"visualization beats the best image: {sum(beaten.values())}/{total} "
          f"({', '.join(f'{k} {v}/{len(blocks[k])}' for k, v in beaten.items())})", flush=True)
    write(args, "dictionary_atoms", figure, record, started)


if __name__ == "__main__":
    main()

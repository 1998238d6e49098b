"""The pieces of scripts/figures/dictionary_atoms.py at tiny sizes (the whole script runs in
tests/test_figures.py, full suite): the exemplars it ranks from per-image channel means are the atom
exemplars of `phosphene.dictionary.top_exemplars`, the units are ranked by energy, and the figure puts
each row's visualization, frame and exemplars where the layout says."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from phosphene.dictionary import DictionarySettings, fit_dictionary, sample_activations
from phosphene.dictionary import top_exemplars as library_exemplars
from phosphene.mining.dataset import Preprocessing

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts" / "figures"


@pytest.fixture(scope="module")
def figure():
    sys.path.insert(0, str(SCRIPTS))  # the script imports its sibling _common
    try:
        spec = importlib.util.spec_from_file_location("dictionary_atoms", SCRIPTS / "dictionary_atoms.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["dictionary_atoms"] = module  # its dataclass looks itself up there
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPTS))
    return module


@pytest.fixture(scope="module")
def images(samples_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dictionary_atoms_images")
    for path in sorted(samples_dir.iterdir())[:12]:
        (folder / path.name).symlink_to(path)
    return folder


def test_exemplars_from_channel_means_are_the_dictionary_atom_exemplars(figure, model, images, one_thread):
    sample = sample_activations(model, "_blocks.8", images, per_image=16, size=64, num_workers=0,
                                progress=False)
    d = fit_dictionary(sample, DictionarySettings(method="kmeans", atoms=4), "_blocks.8", model.name)
    paths = sorted(images.iterdir())
    means = figure.image_channel_means(model, "_blocks.8", paths, Preprocessing(64, 0.875), batch_size=5)
    assert means.shape == (12, 112)
    atoms = d.by_energy()[:3]
    ours = figure.top_exemplars(means, d.atoms[atoms].numpy(), k=3)
    theirs = library_exemplars(model, d, images, atoms, k=3, size=64, num_workers=0, progress=False)
    for (indices, values), their_paths, their_values in zip(ours, theirs.paths, theirs.values):
        assert [paths[i].name for i in indices] == [p.name for p in their_paths]
        np.testing.assert_allclose(values, their_values, rtol=1e-4, atol=1e-4)
    # units: one-hot directions give the channel means; ranked by the share of mean(a²)
    vectors = np.array([[3.0, 0.0, 1.0], [-3.0, 0.5, 1.0]], dtype=np.float32)
    ranked = figure.top_units(vectors, 2)
    assert [c for c, _ in ranked] == [0, 2] and ranked[0][1] == pytest.approx(9 / (9 + 0.125 + 1))
    (best, best_values), = figure.top_exemplars(means, np.eye(112)[[7]], k=2)
    assert best_values[0] == pytest.approx(means[:, 7].max()) and best[0] == int(means[:, 7].argmax())


def test_figure_layout_puts_visualizations_frames_and_exemplars_in_place(figure, samples_dir):
    paths = sorted(samples_dir.iterdir())[:3]
    prep = Preprocessing(32, 0.875)
    rows = {"units": [figure.Row("units", 5, np.eye(4)[1], 0.2, [], 9.0, ([0, 1], [4.0, 3.0]))],
            "kmeans": [figure.Row("kmeans", 2, np.ones(4) / 2, 0.3, [(1, 0.5)], 2.0, ([2, 0], [3.5, 1.0])),
                       figure.Row("kmeans", 0, np.ones(4) / 2, 0.1, [(3, -0.5)], 1.0, ([1, 2], [0.5, 0.2]))]}
    visuals = {"units": [torch.zeros(3, 8, 8)],
               "kmeans": [torch.full((3, 8, 8), 0.25), torch.full((3, 8, 8), 0.5)]}
    thumb = 24
    canvas = figure.compose(rows, visuals, paths, prep, {"units": "U", "kmeans": "K"}, "note", thumb)
    label_w, pad, text_h, title_h, gap = 118, 4, 16, 26, 22
    block_w = label_w + 3 * (thumb + pad) + pad
    assert canvas.size == (2 * block_w + gap + 2 * pad, title_h + 2 * (thumb + text_h + pad) + 40 + pad)
    pixels = np.asarray(canvas)
    x = pad + label_w
    y = title_h
    assert pixels[y + thumb // 2, x + thumb // 2].tolist() == [0, 0, 0]  # units' visualization (zeros)
    assert pixels[y + thumb // 2, x - 2].tolist() == [200, 40, 40]  # its red frame
    second = pad + block_w + gap + label_w
    assert abs(int(pixels[y + thumb // 2, second + thumb // 2, 0]) - 64) <= 1  # k-means row 1 (0.25)
    assert abs(int(pixels[y + thumb + text_h + pad + thumb // 2, second + thumb // 2, 0]) - 128) <= 1
    exemplar = np.asarray(figure.Image.fromarray(
        figure.decode_image(paths[2], prep).transpose(1, 2, 0)).resize((thumb, thumb)))
    x_ex = second + thumb + 2 * pad
    np.testing.assert_array_equal(pixels[y:y + thumb, x_ex:x_ex + thumb], exemplar)
    assert [r.beats_best_image for r in rows["units"] + rows["kmeans"]] == [True, False, True]

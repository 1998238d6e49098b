"""The superposition diagnostic (phosphene.inhibition.superposition) on known answers: the toy model
of tests/toy_superposition.py, hand-made activations and gradients, and a tension run with it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from toy_superposition import toy_dictionary, toy_images, toy_model

from phosphene.cli import main
from phosphene.dictionary import Dictionary
from phosphene.errors import PhospheneError
from phosphene.inhibition.superposition import SuperpositionCheck, atom_attribution, diagnose, measure
from phosphene.inhibition.tension import tension_report


def _dictionary(atoms: torch.Tensor, method: str = "kmeans") -> Dictionary:
    atoms = torch.nn.functional.normalize(atoms.float(), dim=1)
    energy = torch.full((len(atoms),), 1 / len(atoms))
    return Dictionary(atoms, atoms.clone(), torch.zeros(atoms.shape[1]), energy, method, "mix", "toy", "hand")


def test_atom_attributions_and_residual_add_up_to_the_channel_attribution():
    torch.manual_seed(0)
    a, g = torch.randn(3, 5, 4, 4).relu(), torch.randn(3, 5, 4, 4)
    contributions, residual = atom_attribution(a, g, _dictionary(torch.randn(4, 5).abs()))
    assert contributions.shape == (3, 4, 4, 4) and residual.shape == (3, 4, 4)
    torch.testing.assert_close(contributions.sum(1) + residual, (a * g).sum(1).double())
    assert residual.abs().sum() > 0  # one atom per position cannot reconstruct random vectors


def test_superposed_toy_features_carry_e_plus_and_e_minus_on_different_atoms_and_are_flagged():
    model = toy_model(superposed=True)
    dictionary = toy_dictionary(model, toy_images(32, noise=0.0))
    result = diagnose(model, toy_images(8, seed=1), "unit:0", dictionary)
    assert result.interference.min() >= 0.9  # ≥ 0.9 of E⁺ and E⁻ on different atoms
    assert result.channel_overlap.min() >= 0.9  # ... through the same channel
    assert result.flagged.all()
    plus_atom, minus_atom = int(result.share_plus[0].argmax()), int(result.share_minus[0].argmax())
    assert float(dictionary.atoms[plus_atom] @ torch.tensor([1.0, 1.0])) / 2 ** 0.5 > 0.99  # A's direction
    assert float(dictionary.atoms[minus_atom] @ torch.tensor([1.0, -1.0])) / 2 ** 0.5 > 0.99  # B's


def test_control_toy_with_a_channel_per_feature_is_not_flagged():
    model = toy_model(superposed=False)
    dictionary = toy_dictionary(model, toy_images(32, noise=0.0))
    result = diagnose(model, toy_images(8, seed=1), "unit:0", dictionary)
    assert result.interference.min() >= 0.9  # two features still ...
    assert result.channel_overlap.max() <= 0.05  # ... but the channels already separate them
    assert not result.flagged.any()


def test_one_atom_exciting_here_and_inhibiting_there_has_no_interference():
    a = torch.zeros(1, 2, 1, 2)
    a[0, 0] = 1.0  # atom 0 = channel 0 at both positions
    g = torch.tensor([[[[1.0, -1.0]], [[0.0, 0.0]]]])  # + at one position, - at the other
    result = measure(a, g, _dictionary(torch.eye(2)))
    assert result.interference[0] == pytest.approx(0.0)
    assert result.channel_overlap[0] == pytest.approx(1.0)
    assert not result.flagged[0]


def test_bad_threshold_and_channel_count_are_one_line_errors():
    a = torch.ones(1, 2, 1, 1)
    with pytest.raises(PhospheneError, match="threshold"):
        measure(a, a, _dictionary(torch.eye(2)), threshold=2)
    with pytest.raises(PhospheneError, match="3-channel atoms"):
        measure(a, a, _dictionary(torch.eye(3)))


@pytest.fixture(scope="module")
def toy_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    for i, image in enumerate(toy_images(12, seed=2)):
        pixels = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:02d}.png")
    return folder


def test_tension_report_writes_the_diagnostic_of_the_mtis(toy_folder, tmp_path):
    model = toy_model(superposed=True)
    dictionary = toy_dictionary(model, toy_images(32, noise=0.0))
    report = tension_report(model, toy_folder, "unit:0", ["mix"], tmp_path, n=3, num_workers=0,
                            progress=False, superposition=SuperpositionCheck(dictionary))
    assert (tmp_path / "superposition.png").is_file() and "superposition.png" in report.files
    summary = json.loads((tmp_path / "tension.json").read_text())["superposition"]
    assert summary["flagged"] == 3 and len(summary["images"]) == 3
    first = summary["images"][0]
    assert first["atoms_e_plus"][0]["atom"] != first["atoms_e_minus"][0]["atom"]
    assert first["interference"] >= 0.9 and first["path"].endswith(".png")
    with pytest.raises(PhospheneError, match="add --attr-layer mix"):
        tension_report(model, toy_folder, "unit:0", ["features"], tmp_path,
                       superposition=SuperpositionCheck(dictionary))


def test_cli_rejects_a_missing_dictionary_in_one_line(toy_folder, tmp_path):
    result = CliRunner().invoke(main, ["tension", "--images", str(toy_folder), "--target",
                                       "_blocks.8._relu1:3", "--attr-layer", "_blocks.7",
                                       "--dictionary-at-attribution", str(tmp_path / "none.safetensors"),
                                       "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "dictionary file not found" in result.output

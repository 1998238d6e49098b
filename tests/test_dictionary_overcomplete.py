"""overcomplete's methods behind phosphene's registry: sparse autoencoders (TopK, BatchTopK, JumpReLU)
and semi-NMF / convex NMF fit, beat a trivial reconstruction, round-trip bit for bit, and run from
the CLI (their atoms are units like k-means atoms: the atom layer reads only `atoms`); without
overcomplete they say in one line how to install it."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_dictionary import _images, _sample

import phosphene
from phosphene.cli.app import main
from phosphene.dictionary import DictionarySettings, fit_dictionary, load_dictionary, methods

pytest.importorskip("sklearn")
if importlib.util.find_spec("overcomplete") is None:
    pytest.skip("overcomplete is not installed (docs/dictionary.md)", allow_module_level=True)

NEW = ("topk", "batchtopk", "jumprelu", "seminmf", "convexnmf")
TINY = {"epochs": 4, "fit_batch": 32, "lr": 1e-2, "top_k": 2, "max_iter": 200}


def _fit(method: str, atoms: int):
    settings = DictionarySettings(method=method, atoms=atoms, **TINY)
    return fit_dictionary(_sample(_vectors()), settings, "x", "m")


def _vectors(n: int = 400, seed: int = 0) -> np.ndarray:
    """Sparse non-negative mixtures of 3 directions in 12-D, plus noise (positive and negative)."""
    rng = np.random.default_rng(seed)
    return (np.maximum(rng.normal(size=(n, 3)), 0) @ rng.normal(size=(3, 12))
            + 0.05 * rng.normal(size=(n, 12))).astype(np.float32)


@pytest.mark.parametrize("method", NEW)
def test_method_fits_beats_the_mean_and_round_trips_bit_for_bit(method, tmp_path):
    settings = DictionarySettings(method=method, atoms=6, **TINY)
    dictionary = fit_dictionary(_sample(_vectors()), settings, "x", "m")
    # the trivial reconstruction (every vector by the mean) has R² 0 on the held-out vectors
    assert dictionary.metrics["r2_held_out"] > 0.4, dictionary.metrics
    assert dictionary.atoms.shape == (6, 12) and torch.isclose(dictionary.energy.sum(), torch.tensor(1.0))
    again = load_dictionary(dictionary.save(tmp_path / f"{method}.safetensors"))
    assert again.method == method and again.settings["top_k"] == 2
    assert set(again.state) == set(dictionary.state)
    probe = torch.from_numpy(_vectors(50, seed=1))
    assert torch.equal(dictionary.encode(probe), again.encode(probe))
    assert (dictionary.encode(probe) >= 0).all()  # all five give non-negative codes


def test_an_sae_file_without_its_weights_is_refused_in_one_line(tmp_path):
    dictionary = _fit("topk", 3)
    dictionary.state = {}
    path = dictionary.save(tmp_path / "bare.safetensors")
    with pytest.raises(phosphene.PhospheneError, match="not a readable phosphene dictionary .the topk SAE's"):
        load_dictionary(path)


def test_topk_keeps_k_codes_and_stores_the_encoder_and_scale():
    dictionary = _fit("topk", 6)
    codes = dictionary.encode(torch.from_numpy(_vectors(30, seed=2)))
    assert ((codes != 0).sum(1) <= 2).all() and dictionary.metrics["l0"] <= 2
    assert dictionary.state["sae.encoder.final_block.0.weight"].shape == (6, 12)
    assert dictionary.state["sae.encoder.final_block.0.bias"].shape == (6,)
    assert float(dictionary.state["input_scale"][0]) > 0
    # the reconstruction is codes @ components + mean: the stored decoder, scaled back
    fitted = dictionary.fitted()
    manual = codes.numpy() @ fitted.components + fitted.mean
    assert np.allclose(methods.reconstruct(fitted, codes.numpy()), manual)


def test_jumprelu_and_batchtopk_store_their_thresholds():
    jump = _fit("jumprelu", 5)
    assert jump.state["sae.thresholds"].shape == (5,)
    batch = _fit("batchtopk", 5)
    threshold = float(batch.state["running_threshold"][0])
    x = torch.from_numpy(_vectors(40, seed=3))
    codes = batch.encode(x)
    assert ((codes == 0) | (codes >= threshold)).all()  # eval mode: the running threshold


def test_encoding_leaves_the_global_random_state_alone():
    dictionary = _fit("seminmf", 4)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    dictionary.encode(torch.from_numpy(_vectors(20)))
    assert torch.equal(torch.rand(3), expected)


def test_missing_overcomplete_is_one_line_telling_how_to_install(monkeypatch, tmp_path):
    for name in [n for n in sys.modules if n == "overcomplete" or n.startswith("overcomplete.")]:
        monkeypatch.delitem(sys.modules, name)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "overcomplete" else find_spec(name, *args))
    with pytest.raises(phosphene.PhospheneError, match=r"pip install --no-deps overcomplete==0\.3\.0 einops"):
        fit_dictionary(_sample(_vectors()), DictionarySettings(method="topk", atoms=4), "x", "m")
    result = CliRunner().invoke(main, ["dictionary", str(_images(tmp_path / "images", count=2)), "--layer",
                                       "_blocks.8", "--method", "jumprelu", "--atoms", "2", "--size", "32",
                                       "--workers", "0", "--out", str(tmp_path / "out"), "--device", "cpu",
                                       "--quiet"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "this method needs overcomplete: pip install --no-deps" in result.output


def test_cli_learns_an_sae(tmp_path):
    folder = _images(tmp_path / "images")
    result = CliRunner().invoke(main, ["dictionary", str(folder), "--layer", "_blocks.8", "--method", "topk",
                                  "--atoms", "8", "--top-k", "2", "--epochs", "2", "--fit-batch", "64",
                                  "--size", "48", "--workers", "0", "--out", str(tmp_path / "out"),
                                  "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("learned topk8: topk 8 atoms of _blocks.8 (112 channels)")
    path = tmp_path / "out" / "dictionary__blocks.8_topk8.safetensors"
    loaded = load_dictionary(path)
    assert loaded.settings["epochs"] == 2 and loaded.settings["fit_batch"] == 64 and loaded.metrics["l0"] <= 2

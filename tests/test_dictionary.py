"""Learned dictionaries (phosphene.dictionary): the fit, the file, the metrics, the atom layer, and
the CLI (`phosphene dictionary`, then atoms rendered and mined through --dictionary)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

import phosphene
from phosphene import mining
from phosphene.cli.app import main
from phosphene.dictionary import (
    ActivationSample,
    DictionarySettings,
    attach,
    attached,
    detach,
    fit_dictionary,
    learn_dictionary,
    load_dictionary,
)
from phosphene.dictionary.sampling import Reservoir
from phosphene.layers.folding import fold_batchnorm

pytest.importorskip("sklearn")


def _sample(vectors: np.ndarray) -> ActivationSample:
    return ActivationSample(vectors.astype(np.float32), 1, 1, 0, len(vectors), "0" * 64, "synthetic")


def _images(folder, count: int = 6, side: int = 40):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = (rng.random((side, side + 4 * i, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    return folder


class ChannelsLast(nn.Module):
    """A channels-last Linear between two convolutions (an NHWC layer)."""

    def __init__(self):
        super().__init__()
        self.mix = nn.Linear(8, 8)

    def forward(self, x):
        return self.mix(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def tiny_model() -> phosphene.ImageModel:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), ChannelsLast(),
                        nn.Conv2d(8, 4, 3, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    net[1].running_mean.uniform_(-0.5, 0.5)
    net[1].running_var.uniform_(0.5, 2.0)
    return phosphene.ImageModel(net.eval(), input_size=32, name="tiny")


def test_learning_writes_the_file_with_metrics_and_counts_bad_files(tmp_path):
    folder = _images(tmp_path / "images")
    settings = DictionarySettings(method="kmeans", atoms=4, per_image=20, num_workers=0)
    dictionary, path = learn_dictionary(tiny_model(), "2", folder, tmp_path / "out", settings, progress=False)
    assert path == tmp_path / "out" / "dictionary_2_kmeans4.safetensors" and path.is_file()
    loaded = load_dictionary(path)
    assert loaded.images["n_images"] == 7 and loaded.images["n_used"] == 6 and loaded.images["n_skipped"] == 1
    assert loaded.model == "tiny" and loaded.layer == "2" and loaded.method == "kmeans"
    assert loaded.settings["per_image"] == 20 and len(loaded.images["image_list_sha256"]) == 64
    assert {"r2_held_out", "r2_fit", "sparsity", "l0", "dead_atoms"} <= set(loaded.metrics)
    assert loaded.metrics["n_fit"] + loaded.metrics["n_held_out"] == 6 * 20
    assert loaded.metrics["l0"] == 1.0  # k-means: one atom per vector
    assert torch.isclose(loaded.energy.sum(), torch.tensor(1.0))
    assert "kmeans4: kmeans 4 atoms of 2 (8 channels)" in loaded.summary()
    assert loaded.by_energy()[0] == int(loaded.energy.argmax())
    (atom, weight), = loaded.unit_atoms(5, 1)
    assert weight == float(loaded.atoms[atom, 5]) and abs(weight) == float(loaded.atoms[:, 5].abs().max())
    nhwc, _ = learn_dictionary(tiny_model(), "3.mix", folder, tmp_path / "out", settings, progress=False)
    assert nhwc.channels == 8 and nhwc.images["n_used"] == 6  # the Linear's last dimension


def test_pca_with_all_components_reconstructs_exactly_and_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 3.0
    dictionary = fit_dictionary(_sample(vectors), DictionarySettings(method="pca", atoms=6), "x", "m")
    assert dictionary.metrics["r2_held_out"] > 0.9999 and dictionary.metrics["dead_atoms"] == 0
    fewer = fit_dictionary(_sample(vectors), DictionarySettings(method="pca", atoms=2), "x", "m")
    assert fewer.metrics["r2_held_out"] < 0.99
    path = dictionary.save(tmp_path / "d.safetensors")
    again = load_dictionary(path)
    probe = torch.randn(7, 6)
    assert torch.equal(dictionary.encode(probe), again.encode(probe))
    assert torch.equal(dictionary.atoms, again.atoms) and again.metrics == dictionary.metrics


def test_kmeans_atoms_are_the_unit_norm_cluster_directions():
    rng = np.random.default_rng(2)
    directions = np.linalg.qr(rng.normal(size=(10, 3)))[0].T  # 3 orthonormal directions in 10-D
    labels = rng.integers(0, 3, 600)
    vectors = directions[labels] * rng.uniform(0.5, 5, (600, 1)) + 0.02 * rng.normal(size=(600, 10))
    dictionary = fit_dictionary(_sample(vectors), DictionarySettings(method="kmeans", atoms=3), "x", "m")
    assert torch.allclose(dictionary.atoms.norm(dim=1), torch.ones(3), atol=1e-5)
    cosines = dictionary.atoms.double() @ torch.from_numpy(directions).T
    assert sorted(cosines.max(0).values.tolist())[0] > 0.99  # every true direction found
    assert dictionary.metrics["r2_held_out"] > 0.95


def test_nmf_codes_are_non_negative_and_encode_keeps_the_spatial_shape(tmp_path):
    rng = np.random.default_rng(3)
    vectors = np.abs(rng.normal(size=(200, 5)))
    dictionary = fit_dictionary(_sample(vectors), DictionarySettings(method="nmf", atoms=3), "x", "m")
    codes = dictionary.encode(torch.from_numpy(vectors[:20].reshape(2, 10, 5).transpose(0, 2, 1)[..., None]))
    assert codes.shape == (2, 3, 10, 1) and (codes >= 0).all()
    assert dictionary.metrics["r2_held_out"] > 0.3
    again = load_dictionary(dictionary.save(tmp_path / "nmf.safetensors"))
    probe = torch.rand(9, 5)
    assert torch.equal(dictionary.encode(probe), again.encode(probe))  # bit for bit after the round trip


def test_reservoir_keeps_a_bounded_uniform_sample():
    reservoir = Reservoir(200, 1, seed=0)
    for start in range(0, 20_000, 500):
        reservoir.add(np.arange(start, start + 500, dtype=np.float32)[:, None])
    assert reservoir.sample.shape == (200, 1) and reservoir.seen == 20_000
    assert 7_000 < reservoir.sample.mean() < 13_000  # uniform over 0..19999, not the first rows


def test_the_atom_layer_is_the_projection_in_every_layout_and_detaches():
    model = tiny_model()
    before = phosphene.layer_names(model)
    x = torch.rand(2, 3, 32, 32)
    for layer, module in (("1", model.net[1]), ("3.mix", model.net[3].mix)):  # NCHW (BatchNorm), NHWC
        atoms = torch.nn.functional.normalize(torch.randn(5, 8), dim=1)
        dictionary = fit_dictionary(_sample(np.random.rand(40, 8)), DictionarySettings(atoms=5), layer,
                                    "tiny", name="dirs")
        dictionary.atoms = atoms
        with attached(model, [dictionary]) as (name,):
            assert name == f"{layer}.dirs"
            with phosphene.LayerTap(model, [name, layer]) as tap, torch.no_grad():
                acts = tap(x)
            assert acts[name].shape == (2, 5, 32, 32)
            assert torch.allclose(acts[name], dictionary.projections(acts[layer]), atol=1e-5)
            with fold_batchnorm(model, [name], 32, "cpu"), phosphene.LayerTap(model, [name]) as tap, \
                    torch.no_grad():
                assert torch.allclose(tap(x)[name], acts[name], atol=1e-5)  # the source is not folded
        assert phosphene.layer_names(model) == before and "forward" not in module.__dict__


def test_attach_refuses_another_model_or_layer_width(tmp_path):
    model = tiny_model()
    other = fit_dictionary(_sample(np.random.rand(40, 8)), DictionarySettings(atoms=2), "1", "resnet")
    with pytest.raises(phosphene.PhospheneError, match="learned on model resnet, not tiny"):
        attach(model, other)
    wide = fit_dictionary(_sample(np.random.rand(40, 6)), DictionarySettings(atoms=2), "1", "tiny")
    with pytest.raises(phosphene.PhospheneError, match="6-channel atoms, 1 has 8 channels"):
        attach(model, wide)
    assert phosphene.layer_names(model) == phosphene.layer_names(tiny_model())
    ok = fit_dictionary(_sample(np.random.rand(40, 8)), DictionarySettings(atoms=2), "1", "tiny")
    attach(model, ok)
    with pytest.raises(phosphene.PhospheneError, match="already has a part called kmeans2"):
        attach(model, ok)
    detach(model, ok)


def test_objective_of_an_atom_is_its_direction():
    dictionary = fit_dictionary(_sample(np.random.rand(40, 8)), DictionarySettings(atoms=3), "1", "tiny")
    acts = torch.randn(3, 8, 4, 4)
    objective = dictionary.objective([0, 1, 2])
    expected = dictionary.projections(acts).mean((2, 3))[torch.arange(3), torch.arange(3)]
    assert torch.allclose(objective({"1": acts}), expected, atol=1e-5)
    assert objective.labels == ["1.kmeans3:0", "1.kmeans3:1", "1.kmeans3:2"]
    with pytest.raises(phosphene.UnitOutOfRangeError, match="atom 3 out of range"):
        dictionary.objective(3)


@pytest.fixture(scope="module")
def cli_dictionary(tmp_path_factory):
    """A k-means dictionary of efficientnet_lite0's _blocks.8, learned through the CLI at 32 px."""
    root = tmp_path_factory.mktemp("dictionary")
    folder = _images(root / "images")
    result = CliRunner().invoke(main, ["dictionary", str(folder), "--layer", "_blocks.8", "--atoms", "4",
                                       "--size", "48", "--workers", "0", "--out", str(root / "out"),
                                       "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    return root, root / "out" / "dictionary__blocks.8_kmeans4.safetensors", result.output


def test_cli_learns_a_dictionary_with_a_one_line_summary(cli_dictionary):
    _, path, output = cli_dictionary
    lines = output.strip().splitlines()
    assert lines[0].startswith("learned kmeans4: kmeans 4 atoms of _blocks.8 (112 channels), R² held-out")
    assert "images: 6 of 7 used, 1 skipped" in lines[1]
    assert lines[2].startswith("largest atoms by energy share: ")
    assert f"--dictionary {path} with layer _blocks.8.kmeans4" in lines[3] and path.is_file()


def test_cli_renders_atoms(cli_dictionary):
    root, path, _ = cli_dictionary
    rendered = CliRunner().invoke(main, ["render", "--dictionary", str(path), "--layer", "_blocks.8.kmeans4",
                                    "--channels", "0-1", "--steps", "3", "--size", "32", "--out",
                                    str(root / "render"), "--device", "cpu", "--quiet"])
    assert rendered.exit_code == 0, rendered.output
    assert "_blocks.8.kmeans4:1" in rendered.output and (root / "render" / "grid.png").is_file()


@pytest.fixture(scope="module")
def cli_atom_run(cli_dictionary):
    """A run mined through the CLI with the dictionary attached: _blocks.8 and its atom layer."""
    root, path, _ = cli_dictionary
    args = ["mine", "--dictionary", str(path), "--layers", "_blocks.8,_blocks.8.kmeans4", "--images",
            str(root / "images"), "--k", "2", "--size", "32", "--workers", "0", "--sheet-k", "0", "--out",
            str(root / "mine"), "--device", "cpu", "--quiet"]
    mined = CliRunner().invoke(main, args)
    assert mined.exit_code == 0, mined.output
    return root / "mine"


def test_cli_mines_atoms(cli_atom_run):
    run = mining.open(cli_atom_run)
    assert [len(run.top("_blocks.8.kmeans4", a)) for a in range(4)] == [2, 2, 2, 2]
    assert len(run.bottom("_blocks.8.kmeans4", 3)) == 2


def test_cli_errors_are_one_line_with_exit_code_2(cli_dictionary, tmp_path):
    root, path, _ = cli_dictionary
    (tmp_path / "corrupt.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    runner = CliRunner()
    common = ["--workers", "0", "--size", "32", "--device", "cpu", "--quiet"]
    cases = [
        (["dictionary", str(root / "images"), "--layer", "_blocks.99", "--out", str(tmp_path)] + common,
         "unknown layer '_blocks.99'"),
        (["dictionary", str(root / "images"), "--layer", "_blocks.8", "--atoms", "500", "--per-image", "2",
          "--out", str(tmp_path)] + common, "500 atoms need at least 500 activation vectors"),
        (["dictionary", str(root / "images"), "--layer", "_blocks.8"] + common, "give --out"),
        (["render", "--dictionary", str(tmp_path / "corrupt.safetensors"), "--layer", "_blocks.8",
          "--channels", "0", "--out", str(tmp_path / "r"), "--device", "cpu"], "not a readable phosphene"),
        (["render", "--dictionary", str(tmp_path / "missing.safetensors"), "--layer", "_blocks.8",
          "--channels", "0", "--out", str(tmp_path / "r"), "--device", "cpu"], "dictionary file not found"),
        (["render", "--dictionary", str(path), "--layer", "_blocks.8.kmeans4", "--channels", "4", "--steps",
          "1", "--size", "32", "--out", str(tmp_path / "r"), "--device", "cpu", "--quiet"],
         "channel 4 out of range"),
    ]
    for args, message in cases:
        result = runner.invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_atom_sheet_shows_each_atom_with_its_top_exemplars(tmp_path):
    from phosphene.dictionary import atom_sheet, top_exemplars

    model = tiny_model()
    folder = _images(tmp_path / "images")
    dictionary, _ = learn_dictionary(model, "2", folder, tmp_path, DictionarySettings(atoms=3, per_image=8,
                                                                                    num_workers=0),
                                     progress=False)
    found = top_exemplars(model, dictionary, folder, [0, 2], k=4, num_workers=0, progress=False)
    assert [len(p) for p in found.paths] == [4, 4]
    assert found.values[0] == sorted(found.values[0], reverse=True)
    image = torch.from_numpy(mining.decode_image(found.paths[1][0], found.prep))[None].float() / 255
    with phosphene.LayerTap(model, ["2"]) as tap, torch.no_grad():
        expected = dictionary.projections(tap(image)["2"])[0, 2].mean()
    assert abs(found.values[1][0] - float(expected)) < 1e-4
    sheet = atom_sheet(model, dictionary, folder, k=4, config=phosphene.RenderConfig(steps=2, size=32),
                       thumb=40, num_workers=0, progress=False)
    assert sheet.image.size[1] > 3 * 40 and sheet.image.size[0] > 5 * 40
    assert sorted(sheet.atoms) == [0, 1, 2] and len(sheet.visual_values) == 3 and 0 <= sheet.beaten <= 3


def test_cli_draws_the_atom_sheet(cli_dictionary):
    root, path, _ = cli_dictionary
    result = CliRunner().invoke(main, ["atoms", str(path), str(root / "images"), "--atoms", "0-1", "--k", "3",
                                       "--steps", "2", "--size", "32", "--image-size", "32", "--workers", "0",
                                       "--out", str(root / "sheet.png"), "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "atom sheet of _blocks.8.kmeans4 (2 atoms, top 3 images each)" in result.output
    assert "visualization above the best image for" in result.output
    assert (root / "sheet.png").is_file()


def test_learning_from_a_mining_run_writes_into_the_run_folder(tmp_path):
    model = tiny_model()
    folder = _images(tmp_path / "images", count=4)
    run = mining.run_mining(model, ["2"], folder, tmp_path / "run", k=2, num_workers=0, progress=False)
    dictionary, path = learn_dictionary(model, "2", run.root, run.root, DictionarySettings(
        method="pca", atoms=8, per_image=50, num_workers=0), progress=False)
    assert path.parent == run.root
    assert dictionary.images["n_used"] == 4 and dictionary.images["n_skipped"] == 1
    assert dictionary.metrics["r2_held_out"] > 0.999  # all 8 components of an 8-channel layer


def test_a_model_with_atoms_survives_deepcopy_and_pickling(tmp_path):
    import copy
    import pickle

    model = tiny_model()
    settings = DictionarySettings(atoms=3, per_image=8, num_workers=0)
    folder = _images(tmp_path / "images")
    dictionary, path = learn_dictionary(model, "0", folder, tmp_path, settings, progress=False)
    x = torch.rand(2, 3, 32, 32)

    def atoms_of(net):
        with phosphene.LayerTap(net, ["0.kmeans3"]) as tap, torch.no_grad():
            return tap(x)["0.kmeans3"]

    with attached(model, [path]):
        expected = atoms_of(model)
        for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):  # Ray workers get either
            assert torch.allclose(atoms_of(twin), expected)
        from phosphene.dictionary import attached_dictionaries

        assert attached_dictionaries(model)["0.kmeans3"].sha256 == dictionary.sha256 != None  # noqa: E711
        from phosphene.layers.attachments import attachments

        record = attachments(model)["0.kmeans3"]
        assert record["path"] == str(path.resolve()) and record["atoms"] == 3


def _basis_dictionary(channels: int, layer: str, model: str) -> phosphene.dictionary.Dictionary:
    """A PCA-kind dictionary whose atoms are the channels themselves: unit u is atom u exactly."""
    eye = torch.eye(channels)
    energy = torch.full((channels,), 1 / channels)
    return phosphene.dictionary.Dictionary(eye, eye, torch.zeros(channels), energy, "pca", layer, model,
                                           "basis")


def test_each_unit_is_carried_by_its_own_atom_in_a_basis_dictionary(tmp_path):
    from phosphene.dictionary import atom_share_vectors, unit_atoms_from_activations

    model = tiny_model()
    folder = _images(tmp_path / "images")
    run = mining.run_mining(model, ["0"], folder, tmp_path / "run", k=3, num_workers=0, progress=False)
    shares = atom_share_vectors(model, _basis_dictionary(8, "0", "tiny"), run, units=[2, 5])
    assert np.allclose(shares[2], np.eye(8)[2]) and np.allclose(shares[5], np.eye(8)[5])
    found = unit_atoms_from_activations(model, _basis_dictionary(8, "0", "tiny"), run.root, [2])[2]
    assert found.images == [e.index for e in run.top("0", 2, 3)]
    assert abs(found.reconstruction - found.activation) < 1e-4  # the basis reconstructs exactly
    assert abs(found.activation - np.mean([e.value for e in run.top("0", 2, 3)])) < 1e-3


def test_unit_atom_terms_add_up_to_the_reconstructed_activation(tmp_path):
    from phosphene.dictionary import unit_atoms_from_activations

    model = tiny_model()
    folder = _images(tmp_path / "images")
    run = mining.run_mining(model, ["0"], folder, tmp_path / "run", k=3, num_workers=0, progress=False)
    for method, atoms in (("pca", 8), ("kmeans", 3)):
        dictionary, _ = learn_dictionary(model, "0", run.root, tmp_path / method, DictionarySettings(
            method=method, atoms=atoms, per_image=50, num_workers=0, held_out=0.0), progress=False)
        for unit, item in unit_atoms_from_activations(model, dictionary, run, k=2).items():
            assert item.shares.shape == (atoms,) and (item.shares >= 0).all()
            assert abs(item.shares.sum() - 1) < 1e-6 and len(item.images) == 2
            offset = float(dictionary.mean[unit]) if method == "pca" else 0.0
            assert abs(item.terms.sum() + offset - item.reconstruction) < 1e-5
            if method == "pca":  # all 8 components: exact
                assert abs(item.reconstruction - item.activation) < 1e-3
    with pytest.raises(phosphene.PhospheneError, match="has no top images of 2"):
        unit_atoms_from_activations(model, _basis_dictionary(8, "2", "tiny"), run, [0])


def test_cli_prints_the_atoms_behind_a_units_top_activations(cli_dictionary, cli_atom_run):
    _, path, _ = cli_dictionary
    result = CliRunner().invoke(main, ["atoms", str(path), str(cli_atom_run), "--unit-atoms", "3,96", "--k",
                                       "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("unit 3 of _blocks.8 (top 2 images, activation ")
    assert lines[1].startswith("unit 96 of _blocks.8") and lines[1].count("atom ") == 3
    no_out = CliRunner().invoke(main, ["atoms", str(path), str(cli_atom_run), "--device", "cpu"])
    assert no_out.exit_code == 2 and "give --out FILE.png" in no_out.output

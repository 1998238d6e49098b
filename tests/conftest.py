"""Shared fixtures: the real model is loaded once per session; ../shared data is found or skipped.

Fast and full suite: the tests listed in `SLOW` (measured with ``--durations=0``) get the ``slow``
marker here, in one place. ``pytest`` runs the fast suite (slow tests deselected, a line says how
many); ``pytest --full`` runs everything (what CI runs), ``pytest -m slow`` only the slow ones.
While a slow test runs, a line with its name is printed, and its time when it ends.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

import phosphene

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PHOSPHENE_SHARED", REPO.parent / "shared"))
SAMPLES = SHARED / "data" / "imagenet-samples"
CLASSES_TSV = SHARED / "data" / "imagenet-classes.tsv"

torch.set_num_threads(min(2, torch.get_num_threads()))

# Test ids (or id prefixes: a module, a test with all its parameters) that take more than ~10 s on
# an idle 2-core machine; see docs/testing.md for the measurement.
pytest_plugins = ["fast_limit", "pytester"]  # --max-fast-seconds; pytester for its test

SLOW = (
    "tests/test_inversion.py::test_plus_inversion_drives_f_above_minus_inversion_for_tense_images",
    "tests/test_mining_resume.py::",  # real `phosphene mine` subprocesses, killed and resumed
    "tests/test_atlas.py::",  # UMAP (numba compilation) and the 500 sample images
    "tests/test_atlas_defaults.py::test_readme_atlas_works_on_the_sample_images_with_the_defaults",
    "tests/test_psychophysics_observer.py::",  # mining run, stimuli and a second model
    "tests/test_psychophysics_browser.py::",  # Chromium
    "tests/test_atlas_page_browser.py::",  # Chromium
    "tests/test_psychophysics_server.py::test_fifty_concurrent_participants_lose_and_duplicate_nothing",
    "tests/test_psychophysics_server.py::test_cli_serve_runs_the_experiment_until_stopped",
    "tests/test_psychophysics_server.py::test_fifty_participants_through_a_thousand_idle_connections",
    "tests/test_models.py::test_embedded_model_scores_at_least_85_percent_top1",  # 500 images at 224 px
    "tests/test_render.py::test_renders_beat_the_best_natural_image_for_middle_layer_channels",  # same
    "tests/test_readme_commands.py::test_readme_commands_run_at_tiny_sizes",  # every README command
    "tests/test_notebooks.py::test_notebook_runs_at_tiny_sizes",  # a Jupyter kernel per notebook, 20-80 s
    "tests/test_readme.py::test_readme_python_examples_run",  # every README Python block, 16 s idle
    "tests/test_examples.py::test_example_runs[accentuate_image.py",  # 8.4 s idle: too close to the limit
    "tests/test_accentuate.py::test_attribution_mask_confines_an_unrelated_feature",  # 30 CPU s in CI
    "tests/test_bench_gpu.py::",  # bench_gpu.py --quick end to end: its own model, render, accentuation
    "tests/test_figures.py::",  # the figure scripts, a model load each
    "tests/test_unit_browser.py::test_browser_shows_a_built_unit_and_computes_a_new_one",  # 11 s in CI
    "tests/test_accentuate.py::test_figure_columns_are_the_seeds",  # an accentuation and a render, 11 s idle
    # 224 px, 16 crops, two steps of both loops: ~40 s of CPU
    "tests/test_accent_fidelity.py::test_first_steps_are_faccents_at_faccents_full_defaults",
    "tests/test_report_atoms.py::",  # learns a dictionary, mines, builds a report twice: 5 min at load 9
    "tests/test_report_browser.py::test_atom_page_in_chromium",  # Chromium and the atom report above
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--full", action="store_true", help="run the full suite, slow tests included")



def _is_slow(nodeid: str) -> bool:
    return bool(SLOW) and nodeid.startswith(SLOW)


@pytest.hookimpl(tryfirst=True)  # before -m filters, so `-m slow` sees the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(SLOW):
            item.add_marker(pytest.mark.slow)
    named = any("::" in str(arg) for arg in config.args)  # a test asked for by its id runs
    if config.getoption("--full") or config.getoption("-m") or config.getoption("-k") or named:
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        items[:] = [item for item in items if not item.get_closest_marker("slow")]
        config.hook.pytest_deselected(items=slow)
        config._phosphene_slow = len(slow)  # read by pytest_terminal_summary


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    skipped = getattr(config, "_phosphene_slow", 0)
    if skipped:
        terminalreporter.write_line(f"fast suite: {skipped} slow tests not run; `pytest --full` runs all "
                                    "(`pytest -m slow` only those)")


_RUN: dict = {"config": None, "started": {}}


def pytest_configure(config: pytest.Config) -> None:
    _RUN["config"] = config


def pytest_runtest_logstart(nodeid: str, location) -> None:
    """Progress for long tests: a line when a slow test starts ..."""
    if _is_slow(nodeid):
        _RUN["started"][nodeid] = time.monotonic()
        _write(f"[slow test] {nodeid} ...")


def pytest_runtest_logfinish(nodeid: str, location) -> None:
    """... and one with its wall time when it ends."""
    started = _RUN["started"].pop(nodeid, None)
    if started is not None:
        _write(f"[slow test] {nodeid} took {time.monotonic() - started:.0f} s")


def _write(line: str) -> None:
    config = _RUN["config"]
    reporter = config.pluginmanager.get_plugin("terminalreporter") if config is not None else None
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_line(line)


@pytest.fixture(scope="session")
def model() -> phosphene.ImageModel:
    """EfficientNet-Lite0 with its ImageNet weights, on the CPU (shared by all tests)."""
    return phosphene.load_model("efficientnet_lite0", device="cpu")


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """../shared/data/imagenet-samples (500 images); tests using it skip only if it is absent."""
    if not SAMPLES.is_dir():
        pytest.skip(f"{SAMPLES} not found")
    return SAMPLES


@pytest.fixture(scope="session")
def sample_labels(samples_dir) -> dict[str, int]:
    """wnid -> ImageNet class index, from ../shared/data/imagenet-classes.tsv."""
    if not CLASSES_TSV.is_file():
        pytest.skip(f"{CLASSES_TSV} not found")
    rows = CLASSES_TSV.read_text().splitlines()[1:]
    return {row.split("\t")[1]: int(row.split("\t")[0]) for row in rows}


@pytest.fixture(scope="session")
def sample_batch(samples_dir) -> tuple[torch.Tensor, list[Path]]:
    """All sample images, 224 px centre crops, as one (500, 3, 224, 224) tensor, and their paths."""
    paths = phosphene.io.images.list_images(samples_dir)
    return torch.stack([phosphene.load_image(p, 224) for p in paths]), paths


@pytest.fixture(scope="session")
def sample_forward(model, sample_batch) -> dict[str, torch.Tensor]:
    """One pass over the 500 samples: logits (500, 1000) and `_blocks.8` channel means (500, 112)."""
    images, _ = sample_batch
    logits, means = [], []
    with phosphene.LayerTap(model, ["_blocks.8", "logits"]) as tap, torch.no_grad():
        for chunk in images.split(100):
            acts = tap(chunk)
            logits.append(acts["logits"])
            means.append(acts["_blocks.8"].mean((2, 3)))
    return {"logits": torch.cat(logits), "_blocks.8": torch.cat(means)}


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module (faster for small models on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a Chromium for Playwright; the test is skipped, saying how to install it, if absent."""
    import shutil

    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.skip(f"browser test skipped: Chromium not found at {path}; install it to run it "
                    "(Debian/Ubuntu: sudo apt-get install chromium; .ci/run does)")
    pytest.importorskip("playwright", reason="browser test skipped: pip install playwright (test extra)")
    return path


@pytest.fixture(scope="session")
def report_run(samples_dir, model, tmp_path_factory) -> Path:
    """A small mining run for the report tests: 30 sample images, 64 px, `_blocks.4` and `_blocks.8`."""
    from phosphene import mining

    root = tmp_path_factory.mktemp("report_images")
    for path in sorted(samples_dir.iterdir())[:30]:
        (root / path.name).symlink_to(path)
    out = tmp_path_factory.mktemp("report_run") / "run"
    mining.run_mining(model, ["_blocks.4", "_blocks.8"], root, out, k=4, batch_size=16, num_workers=0,
                      size=64, progress=False)
    return out


@pytest.fixture(scope="session")
def report_site(report_run, model, tmp_path_factory):
    """A tiny report of units 0-2 of two layers (built once for all report tests)."""
    from phosphene.report import ReportSettings, build_report

    settings = ReportSettings(steps=4, size=48, diverse=2, batch=3, k=4, probe=16, mtis=2, accent_steps=2,
                              accent_crops=1, accent_top=1, accent_unrelated=1, neighbours=3)
    site = tmp_path_factory.mktemp("report") / "site"
    result = build_report(report_run, ["_blocks.4", "_blocks.8"], site, [0, 1, 2], model=model,
                          settings=settings, progress=False)
    return site, settings, result


@pytest.fixture(scope="session")
def atom_site(report_run, model, tmp_path_factory):
    """A report of atoms: a k-means dictionary of `_blocks.8` (4 atoms) learned on the report run, a
    run that mined `_blocks.8` and its atom layer, a site of atoms 0-3 (given --dictionary), then
    extended, without the dictionary (re-attached from the records), by the two heaviest units of the
    largest atom."""
    pytest.importorskip("sklearn")
    from phosphene import mining
    from phosphene.dictionary import DictionarySettings, attached, learn_dictionary
    from phosphene.report import ReportSettings, build_report

    root = tmp_path_factory.mktemp("atom_report")
    dictionary, path = learn_dictionary(model, "_blocks.8", report_run, root, DictionarySettings(
        atoms=4, per_image=16, num_workers=0), progress=False)
    images = mining.open(report_run).image_root
    with attached(model, [path]):
        run = mining.run_mining(model, ["_blocks.8", dictionary.unit_layer], images, root / "run", k=4,
                                batch_size=16, num_workers=0, size=64, progress=False).root
    settings = ReportSettings(steps=4, size=48, diverse=2, batch=4, k=4, probe=16, mtis=2, accent_steps=2,
                              accent_crops=1, accent_top=1, accent_unrelated=1, neighbours=3)
    site = root / "site"
    build_report(run, [dictionary.unit_layer], site, [0, 1, 2, 3], model=model, settings=settings,
                 progress=False, dictionaries=[path])
    largest = dictionary.by_energy()[0]
    units = [c for c, _ in dictionary.top_units(largest, 2)]
    result = build_report(run, ["_blocks.8"], site, units, model=model, settings=settings, progress=False)
    return site, dictionary, path, run, units, result


@pytest.fixture
def no_network(monkeypatch) -> list:
    """Any socket connection or name lookup raises; returns the list of attempts (for assertions)."""
    import socket

    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:] if args else kwargs)
        raise OSError("network access attempted in a test that forbids it")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts

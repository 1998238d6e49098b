"""The notebooks in notebooks/ run top to bottom at tiny sizes (PHOSPHENE_NOTEBOOK_TINY=1) in a real
Jupyter kernel, are stored without outputs, and README's Tasks table links each of them."""

from __future__ import annotations

import os

import pytest
from conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
NAMES = [path.stem for path in NOTEBOOKS]


def test_there_are_notebooks_for_every_topic():
    assert NAMES == ["01_quick_tour", "02_your_model", "03_feature_accentuation", "04_inhibition",
                     "05_psychophysics", "06_unit_browser"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_notebook_is_stored_without_outputs(path):
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_readme_tasks_table_links_every_notebook():
    readme = (REPO / "README.md").read_text()
    tasks = readme[readme.index("## Tasks"):readme.index("## Install")]
    for name in NAMES:
        assert f"(notebooks/{name}.ipynb)" in tasks, name


@pytest.fixture(scope="module")
def tiny_images(samples_dir, tmp_path_factory):
    """The first 24 sample images (the tench among them), for the notebooks' tiny runs."""
    folder = tmp_path_factory.mktemp("notebook_images")
    for path in sorted(samples_dir.iterdir())[:24]:
        (folder / path.name).symlink_to(path)
    return folder


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_notebook_runs_at_tiny_sizes(path, tiny_images, tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    from jupyter_client.kernelspec import KernelSpecManager

    kernels = KernelSpecManager().find_kernel_specs()
    assert "python3" in kernels, "no python3 Jupyter kernel in this environment: pip install ipykernel"
    monkeypatch.setenv("PHOSPHENE_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("PHOSPHENE_IMAGES", str(tiny_images))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
    shown = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
             if "text/html" in output.get("data", {})]
    assert shown, "no cell displayed a result"

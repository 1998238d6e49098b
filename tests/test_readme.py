"""README's Python examples run as written (at tiny sizes), so the docs cannot drift from the API.

The ```python blocks run in order in one namespace. Sizes and step counts are rewritten small,
file names point at sample images and temporary folders, and `accentuate` / `invert` get one step
and one crop; ``seeds`` and ``images`` (prose: "your images") are two sample images, ``my_module`` and
``my_detector`` a small network; `load_model` returns the session's model.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch

import phosphene
from phosphene.inhibition import inversion

README = Path(__file__).resolve().parent.parent / "README.md"
SMALL = {r"\bsteps=\d+": "steps=1", r"\bsize=\d+": "size=48", r", 224\)": ", 48)",
         r"range\(16\)": "range(2)", r"range\(64\)": "range(1)", r"thresholds=\(16, 64\)": "thresholds=(1,)",
         r"snapshots\[16\]": "snapshots[1]", r"lam=\[0, 0\.5, 1, 2\]": "lam=[0, 1]",
         r"num_workers=\d+": "num_workers=0",
         r"ReportSettings\(steps=1\)": "ReportSettings(steps=1, size=48, diverse=1, batch=2, k=2, probe=4, "
                                        "mtis=1, accent_steps=1, accent_crops=1, accent_top=1, "
                                        "accent_unrelated=0)"}


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def shrink(code: str, paths: dict[str, str]) -> str:
    for pattern, small in SMALL.items():
        code = re.sub(pattern, small, code)
    for name, path in paths.items():
        code = code.replace(f'"{name}"', repr(path))
    return code


def quick(fn):
    def call(*args, **kwargs):
        kwargs.update(steps=1, crops=1)
        if fn is phosphene.accentuate:
            kwargs.update(measure_crops=1, input_size=48)
        return fn(*args, **kwargs)
    return call


def test_readme_has_python_examples():
    assert len(python_blocks(README.read_text())) >= 6


def test_readme_python_examples_run(model, samples_dir, tmp_path, monkeypatch):
    folder = tmp_path / "images"
    folder.mkdir()
    samples = sorted(samples_dir.glob("*.JPEG"))[:4] or sorted(samples_dir.iterdir())[:4]
    for path in samples:
        shutil.copy(path, folder / path.name)
    paths = {"tench.jpg": str(samples[0]), "img.jpg": str(samples[1]), "images/": str(folder),
             "runs/b8": str(tmp_path / "runs" / "b8"), "out/": str(tmp_path / "out"),
             "out/site": str(tmp_path / "out" / "site")}
    monkeypatch.setattr(phosphene, "accentuate", quick(phosphene.accentuate))
    monkeypatch.setattr(inversion, "invert", quick(inversion.invert))
    monkeypatch.setattr(phosphene, "load_model", lambda *args, **kwargs: model)
    seeds = torch.stack([phosphene.load_image(p, 48) for p in samples[:2]])
    nn = torch.nn
    my_module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))

    class Detector(nn.Module):  # a network returning a dict (the logits under "logits")
        def __init__(self):
            super().__init__()
            self.body = my_module

        def forward(self, x):
            return {"logits": self.body(x), "boxes": x.mean((2, 3))}

    namespace = {"seeds": seeds, "images": seeds, "my_module": my_module, "my_detector": Detector()}
    for index, block in enumerate(python_blocks(README.read_text())):
        code = shrink(block, paths)
        try:
            exec(compile(code, f"README.md python block {index}", "exec"), namespace)
        except Exception as exc:  # name the block, then fail with its error
            pytest.fail(f"README python block {index} failed: {type(exc).__name__}: {exc}\n{code}")
    assert (tmp_path / "out").is_dir()

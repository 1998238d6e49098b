"""The model families of other libraries that ``--model`` accepts by name, and what is installed.

``torchvision:<arch>[.<WEIGHTS>]`` names any torchvision classifier (`torchvision_zoo`),
``timm:<arch>[.<tag>]`` any timm model (`timm_zoo`). `family_status` says whether the library is
installed and how many architectures it offers (or how to install it); `family_architectures`
lists them.
"""

from __future__ import annotations

import fnmatch
import importlib.util

from ..errors import PhospheneError, install_hint

FAMILIES = (
    ("torchvision", "torchvision:<arch>[.<WEIGHTS>]", "torchvision:resnet50.IMAGENET1K_V2"),
    ("timm", "timm:<arch>[.<tag>]", "timm:convnext_tiny.fb_in22k_ft_in1k"),
)


def _installed(family: str) -> bool:
    return importlib.util.find_spec(family) is not None  # without importing it (timm is slow)


def family_architectures(family: str, pattern: str = "*") -> list[str]:
    """The architectures of ``family`` matching the shell ``pattern``: torchvision's classifiers
    (with weights enums), timm's pretrained models (``arch.tag`` names)."""
    if not _installed(family):
        raise PhospheneError(f"{family} is not installed: {install_hint(family)}")
    if family == "torchvision":
        import torchvision

        names = torchvision.models.list_models(module=torchvision.models)
    else:
        import timm

        names = timm.list_pretrained()
    return sorted(name for name in names if fnmatch.fnmatchcase(name, pattern))


def family_status(family: str) -> str:
    """One line: how many architectures the installed library offers, or how to install it."""
    if not _installed(family):
        return f"not installed ({install_hint(family)})"
    module = importlib.import_module(family)
    if family == "torchvision":
        count = f"{len(family_architectures(family))} classifiers"
    else:
        count = f"{len(module.list_models(pretrained=True))} pretrained models"
    return f"{count} in {family} {module.__version__.split('+')[0]} (`phosphene models {family}` lists them)"

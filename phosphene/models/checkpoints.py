"""Reading weight files in the formats people have, and fetching them into torch's hub cache.

`read_state_dict` accepts plain state dicts, ``{"state_dict": ...}`` / ``{"model": ...}`` training
checkpoints, ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile) prefixes, and
``.safetensors`` files; anything but a regular file (``/dev/zero``, a FIFO) is refused unread.
`load_into` loads strictly except for keys the caller declares optional (auxiliary heads), and
refuses weights that cannot be a trained network's (`odd_weights`: integers where the model has
floats, NaN or Inf where its own tensor is finite) unless `odd_weights_allowed` is in effect
(``load_model(allow_odd_weights=True)``, ``--allow-odd-weights``). `cached_download` is
torch.hub's own download into ``$TORCH_HOME/hub/checkpoints``, refused with a one-line error in
offline mode (`is_offline`).
"""

from __future__ import annotations

import contextvars
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelLoadError

# Keys under which training scripts nest the weights, most specific first.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "module", "net")
# Prefixes added by DataParallel/DistributedDataParallel and torch.compile.
STRIPPED_PREFIXES = ("module.", "_orig_mod.")
OFFLINE_ENV = "PHOSPHENE_OFFLINE"
_TRUE = {"1", "true", "yes", "on"}


def is_offline(offline: bool | None = None) -> bool:
    """Whether network access is forbidden: ``offline`` when given, else ``PHOSPHENE_OFFLINE=1``
    or ``HF_HUB_OFFLINE=1`` in the environment."""
    if offline is not None:
        return bool(offline)
    return any(os.environ.get(var, "").strip().lower() in _TRUE for var in (OFFLINE_ENV, "HF_HUB_OFFLINE"))


def _unwrap(state: object) -> object:
    """Descend into ``{"state_dict": {...}}``-style wrappers until a flat mapping of tensors remains."""
    while isinstance(state, Mapping) and not all(isinstance(v, torch.Tensor) for v in state.values()):
        inner = next((state[k] for k in WRAPPER_KEYS if isinstance(state.get(k), Mapping)), None)
        if inner is None:
            return state
        state = inner
    return state


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in STRIPPED_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError as exc:
        raise ModelLoadError(f"{path} is a safetensors file: `pip install safetensors`") from exc
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:
        raise ModelLoadError(f"cannot read safetensors file {path}: {type(exc).__name__}") from exc


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict stored in ``path`` (any format in the module docstring), on the CPU.

    Raises `ModelLoadError` for a missing or unreadable file or one that holds no tensors by name.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ModelLoadError(f"weights file not found: {path}") from None
    except OSError as exc:
        raise ModelLoadError(f"cannot read weights file {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise ModelLoadError(f"weights file {path} is not a regular file ({_kind(mode)})")
    if path.suffix == ".safetensors":
        state: object = _read_safetensors(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelLoadError(
                f"cannot read weights file {path}: {type(exc).__name__} (phosphene reads tensors only, "
                "with torch.load(weights_only=True); save model.state_dict())") from exc
    state = _unwrap(state)
    if not isinstance(state, Mapping) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ModelLoadError(f"weights file {path} does not hold a state dict of tensors")
    return _strip_prefixes(dict(state))


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a file"


_ODD_ALLOWED: contextvars.ContextVar[bool] = contextvars.ContextVar("phosphene_odd_weights", default=False)


@contextmanager
def odd_weights_allowed(allowed: bool = True) -> Iterator[None]:
    """Within this block `load_into` loads weights that `odd_weights` would refuse."""
    token = _ODD_ALLOWED.set(allowed)
    try:
        yield
    finally:
        _ODD_ALLOWED.reset(token)


def odd_weights(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> str | None:
    """Why ``state`` cannot be trained weights of the model whose tensors are ``own`` (None if it can):
    integer or boolean tensors where the model has floating-point ones, or NaN/Inf values where the
    model's own tensor is finite (a buffer such as an attention mask may hold -inf legitimately)."""
    keys = sorted(own.keys() & state.keys())
    integers = [k for k in keys if own[k].is_floating_point() and not state[k].is_floating_point()
                and not state[k].is_complex()]
    if integers:
        return (f"{len(integers)} of {len(keys)} tensors hold {state[integers[0]].dtype} values where the "
                f"model has floats (e.g. {integers[0]})")
    broken = [k for k in keys if state[k].is_floating_point() and not own[k].is_meta
              and not bool(torch.isfinite(state[k]).all()) and bool(torch.isfinite(own[k]).all())]
    if broken:
        return f"{len(broken)} of {len(keys)} tensors hold NaN or Inf (e.g. {broken[0]})"
    return None


def _few(keys: Iterable[str], n: int = 3) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def mismatch(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> str | None:
    """A short description of how ``state`` differs from ``own`` (keys and shapes), None if it fits."""
    missing, unexpected = own.keys() - state.keys(), state.keys() - own.keys()
    parts = [f"missing {_few(missing)}"] if missing else []
    parts += [f"unexpected {_few(unexpected)}"] if unexpected else []
    for key in sorted(own.keys() & state.keys()):
        if own[key].shape != state[key].shape:
            parts.append(f"{key} is {tuple(state[key].shape)} in the file, {tuple(own[key].shape)} "
                         "in the model")
            break
    return "; ".join(parts) or None


def load_into(net: nn.Module, state: Mapping[str, torch.Tensor], source: str,
              optional_prefixes: Iterable[str] = ()) -> None:
    """Load ``state`` into ``net`` strictly, except that keys starting with one of
    ``optional_prefixes`` (auxiliary heads the model was built without) are dropped. A mismatch is
    a one-line `ModelLoadError` naming a few missing/unexpected keys or the first shape that differs;
    so are `odd_weights` outside `odd_weights_allowed`."""
    optional = tuple(optional_prefixes)
    own = net.state_dict()
    state = {k: v for k, v in state.items() if k in own or not (optional and k.startswith(optional))}
    problem = mismatch(own, state)
    if problem:
        raise ModelLoadError(f"weights in {source} do not fit the model: {problem}")
    odd = None if _ODD_ALLOWED.get() else odd_weights(own, state)
    if odd:
        raise ModelLoadError(f"weights in {source} cannot be a trained network's: {odd}; "
                             "--allow-odd-weights (allow_odd_weights=True) loads them anyway")
    net.load_state_dict(state, strict=True)


def hub_checkpoint_path(url: str) -> Path:
    """Where ``torch.hub.load_state_dict_from_url(url)`` keeps its file: $TORCH_HOME/hub/checkpoints."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url.split("?")[0])


def offline_error(what: str, cache: Path | str, model_name: str) -> ModelLoadError:
    """The one-line error for weights absent from the cache while downloads are forbidden."""
    return ModelLoadError(
        f"no cached weights for {what} at {cache} and offline mode forbids downloading; fill the cache "
        f"with `phosphene download {model_name}` where there is network (or copy the file there), "
        "or pass --weights FILE")


def cached_download(url: str, model_name: str, offline: bool | None = None) -> Path:
    """The torch-hub cache file for ``url``, downloaded first (torch.hub's own mechanism, with its
    hash check when the file name carries one) unless it is there already.

    In offline mode (`is_offline`) nothing touches the network: a missing file is `ModelLoadError`.
    """
    cached = hub_checkpoint_path(url)
    if cached.is_file():
        return cached
    if is_offline(offline):
        raise offline_error(model_name, cached, model_name)
    cached.parent.mkdir(parents=True, exist_ok=True)
    match = re.search(r"-([a-f0-9]*)\.", cached.name)  # torch.hub.HASH_REGEX
    try:
        torch.hub.download_url_to_file(url, str(cached), match.group(1) if match else None, progress=True)
    except Exception as exc:
        raise ModelLoadError(
            f"could not download weights for {model_name} from {url} ({type(exc).__name__}: "
            f"{str(exc)[:120]}); put the file at {cached} or pass --weights FILE") from exc
    return cached

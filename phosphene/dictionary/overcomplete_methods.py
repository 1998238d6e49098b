"""The methods from `overcomplete` (Fel et al.'s dictionary-learning toolbox): sparse autoencoders
(TopK, BatchTopK, JumpReLU) and semi-NMF / convex NMF. The library's own classes, training loop
(`overcomplete.sae.train_sae`) and solvers do the work; this module feeds them and keeps what
`encode` needs.

- **SAEs** (``topk``, ``batchtopk``, ``jumprelu``): the vectors are standardized, x' = (x - mean) /
  scale (mean per channel, one scale: their standard deviation), as overcomplete advises for
  JumpReLU; the SAE's default encoder (Linear C->K then ReLU) and its l2-normalized dictionary D
  (K, C) are trained with Adam on the MSE (JumpReLU: plus ``sparsity_penalty`` x L0 through
  overcomplete's `heaviside` pseudo-gradient) for ``epochs`` passes over shuffled batches of
  ``fit_batch`` vectors. ``top_k``: TopK keeps the k largest codes per vector; BatchTopK keeps the
  k x batch largest of a training batch and, once trained, every code at or above its running
  threshold; JumpReLU keeps the codes above its learned per-atom thresholds. Stored: the SAE's whole
  ``state_dict`` (encoder weight and bias, the dictionary's weights, JumpReLU's log-thresholds) as
  ``state.sae.*``, the scale (``state.input_scale``), BatchTopK's ``state.running_threshold``, and
  ``top_k`` in the settings; ``components`` = D x scale and ``mean`` give x̂ = codes @ components +
  mean. `encode` rebuilds the SAE, loads that state and calls its own ``encode``: the same codes,
  bit for bit, after a save and load.
- ``seminmf``: `overcomplete.optimization.SemiNMF` (multiplicative updates; codes >= 0, atoms of
  any sign, so a block output's negative half is represented, unlike NMF's).
- ``convexnmf``: `overcomplete.optimization.ConvexNMF` (projected gradient; each atom a
  non-negative combination of the fit vectors). Both on the raw vectors (mean 0). Codes of new
  vectors for the fixed dictionary come from SemiNMF's encoder with that dictionary (ConvexNMF's
  own ``encode`` rebuilds atoms from the *fit* vectors, so it only encodes those): non-negative,
  started from a random draw seeded with ``seed``; the stopping rule looks at the whole batch, so a
  vector's codes depend a little on the batch it is encoded with.

overcomplete's package ``__init__`` also imports its plotting (OpenCV, scikit-image, and a
matplotlib call removed in matplotlib 3.9) and model zoo (timm, torchvision), none of which
dictionaries use, so `import_overcomplete` loads only the ``sae`` and ``optimization`` parts:
overcomplete installs with ``--no-deps`` beside einops (docs/dictionary.md).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from contextlib import contextmanager
from functools import partial
from types import ModuleType

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from ..errors import PhospheneError
from .registry import FitOptions, Fitted, register

OVERCOMPLETE = "overcomplete==0.3.0"
INSTALL = (f"pip install --no-deps {OVERCOMPLETE} einops (after pip install -e '.[dictionary]' "
           "-c constraints/cpu.txt; keeps your torch)")
SAES = ("topk", "batchtopk", "jumprelu")


def import_overcomplete(part: str) -> ModuleType:
    """``overcomplete.<part>`` (``sae`` or ``optimization``) without the package's own ``__init__``
    (see the module docstring); a one-line `PhospheneError` telling how to install it if missing."""
    if "overcomplete" not in sys.modules:
        spec = importlib.util.find_spec("overcomplete")
        if spec is None:
            raise PhospheneError(f"this method needs overcomplete: {INSTALL}")
        sys.modules["overcomplete"] = importlib.util.module_from_spec(spec)  # the package, not run
    try:
        return importlib.import_module(f"overcomplete.{part}")
    except ImportError as exc:
        raise PhospheneError(f"overcomplete.{part} does not import ({exc}): {INSTALL}") from None


@contextmanager
def seeded(seed: int):
    """torch's global random state set to ``seed`` inside, restored after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def batches(x: torch.Tensor, size: int) -> torch.utils.data.DataLoader:
    """Shuffled batches of ``size`` rows of ``x`` (the last partial one dropped), each drawn with one
    indexing op (a `BatchSampler`) rather than stacked row by row: the default `DataLoader` spends
    more time collating 1024 rows than the SAE's step takes."""
    sampler = BatchSampler(RandomSampler(range(len(x))), size, drop_last=True)
    return DataLoader(TensorDataset(x), batch_size=None, sampler=sampler)


def _build_sae(kind: str, k: int, channels: int, options: FitOptions) -> torch.nn.Module:
    sae = import_overcomplete("sae")
    top_k = min(options.top_k, k)
    if kind == "topk":
        return sae.TopKSAE(channels, k, top_k=top_k)
    if kind == "batchtopk":
        return sae.BatchTopKSAE(channels, k, top_k=top_k * options.fit_batch)
    return sae.JumpSAE(channels, k)


def _criterion(kind: str, model: torch.nn.Module, options: FitOptions):
    """MSE, plus the L0 penalty (overcomplete's `heaviside` pseudo-gradient) for JumpReLU."""
    heaviside = import_overcomplete("sae").heaviside

    def loss(x, x_hat, pre_codes, codes, dictionary):
        mse = (x - x_hat).square().mean()
        if kind != "jumprelu":
            return mse
        active = heaviside(torch.relu(pre_codes), torch.exp(model.thresholds), model.kernel_fn,
                           model.bandwidth)
        return mse + options.sparsity_penalty * active.sum(-1).mean()
    return loss


def fit_sae(kind: str, vectors: np.ndarray, k: int, options: FitOptions) -> Fitted:
    """Train overcomplete's ``kind`` SAE on the standardized vectors (see the module docstring)."""
    sae_module = import_overcomplete("sae")
    mean = vectors.mean(0).astype(np.float32)
    centred = vectors - mean  # once: the scale and the inputs share it; scaled in place
    scale = np.float32(np.std(centred)) or np.float32(1)
    centred /= scale
    x = torch.from_numpy(centred)
    batch = min(options.fit_batch, len(x))
    with seeded(options.seed):
        model = _build_sae(kind, k, vectors.shape[1], options)
        if kind == "batchtopk":
            model.top_k = min(options.top_k, k) * batch
        loader = batches(x, batch)
        optimizer = torch.optim.Adam(model.parameters(), lr=options.lr)
        sae_module.train_sae(model, loader, _criterion(kind, model, options), optimizer,
                             nb_epochs=options.epochs, monitoring=0, device="cpu")
    model.eval()
    state = {f"sae.{name}": t.detach().cpu().numpy().copy() for name, t in model.state_dict().items()}
    state["input_scale"] = np.array([scale], dtype=np.float32)
    if kind == "batchtopk":
        state["running_threshold"] = np.array([float(model.running_threshold)], dtype=np.float32)
    with torch.no_grad():
        components = (model.get_dictionary() * float(scale)).numpy().astype(np.float32)
    return Fitted(components, mean, state)


def encode_sae(kind: str, fitted: Fitted, options: FitOptions, vectors: np.ndarray) -> np.ndarray:
    """The SAE's own codes of ``vectors`` (n, C), the SAE rebuilt from ``fitted.state``."""
    k, channels = fitted.components.shape
    with seeded(0):  # the constructor's random init is overwritten; leave the caller's RNG alone
        model = _build_sae(kind, k, channels, options)
    model.load_state_dict({name[4:]: torch.from_numpy(value) for name, value in fitted.state.items()
                           if name.startswith("sae.")})
    model.eval()
    if kind == "batchtopk":
        model.running_threshold = torch.tensor(float(fitted.state["running_threshold"][0]))
    x = np.asarray(vectors, dtype=np.float32) - fitted.mean
    x /= fitted.state["input_scale"][0]
    with torch.no_grad():
        _, codes = model.encode(torch.from_numpy(x))
    return codes.numpy()


for _kind in SAES:
    register(_kind, "overcomplete", partial(encode_sae, _kind))(partial(fit_sae, _kind))


def encode_nonnegative(fitted: Fitted, options: FitOptions, vectors: np.ndarray) -> np.ndarray:
    """Non-negative codes for the fixed dictionary: overcomplete's SemiNMF encoder, seeded."""
    optimization = import_overcomplete("optimization")
    model = optimization.SemiNMF(len(fitted.components), solver="mu")
    model.D = torch.from_numpy(fitted.components)
    model._set_fitted()
    with seeded(options.seed), torch.no_grad():
        codes = model.encode(torch.from_numpy(np.asarray(vectors, dtype=np.float32)),
                             max_iter=options.max_iter)
    return codes.numpy().astype(np.float32)


@register("seminmf", "overcomplete", encode_nonnegative)
def fit_seminmf(vectors: np.ndarray, k: int, options: FitOptions) -> Fitted:
    optimization = import_overcomplete("optimization")
    with seeded(options.seed), torch.no_grad():
        _, dictionary = optimization.SemiNMF(k, solver="mu").fit(torch.from_numpy(vectors),
                                                                  max_iter=options.max_iter)
    return Fitted(dictionary.numpy().astype(np.float32), np.zeros(vectors.shape[1], np.float32))


@register("convexnmf", "overcomplete", encode_nonnegative)
def fit_convexnmf(vectors: np.ndarray, k: int, options: FitOptions) -> Fitted:
    optimization = import_overcomplete("optimization")
    with seeded(options.seed):
        _, dictionary = optimization.ConvexNMF(k, solver="pgd").fit(torch.from_numpy(vectors),
                                                                    max_iter=options.max_iter)
    return Fitted(dictionary.detach().numpy().astype(np.float32), np.zeros(vectors.shape[1], np.float32))

"""Dictionary methods: held-out R² and fit time per 1e5 activation vectors, phosphene's wrapper
(`phosphene.dictionary.methods.fit` + metrics) next to calling the library (scikit-learn or
overcomplete) directly on the same vectors, paired and alternating (wrapper, library, wrapper,
library) so load changes hit both.

    python benchmarks/bench_dictionary.py IMAGES --layer _blocks.8 --atoms 16 --vectors 100000 \
        --methods kmeans,pca,nmf,topk,batchtopk,jumprelu,seminmf,convexnmf

The vectors are sampled once with `sample_activations` (cached in --cache as .npy).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from timing import Timer

import phosphene
from phosphene.dictionary import methods
from phosphene.dictionary.learn import split_sample
from phosphene.dictionary.overcomplete_methods import batches, import_overcomplete
from phosphene.dictionary.registry import FitOptions, get
from phosphene.dictionary.sampling import sample_activations


def overcomplete_fit(method: str, vectors: np.ndarray, k: int, options: FitOptions) -> None:
    """The same fit as `methods.fit`, overcomplete called directly (the same standardization, SAE,
    batches, optimizer and loss for the SAEs; the same solver for the NMFs)."""
    import torch

    sae = import_overcomplete("sae")
    optimization = import_overcomplete("optimization")
    torch.manual_seed(options.seed)
    if method == "seminmf":
        with torch.no_grad():
            optimization.SemiNMF(k, solver="mu").fit(torch.from_numpy(vectors), max_iter=options.max_iter)
        return
    if method == "convexnmf":
        optimization.ConvexNMF(k, solver="pgd").fit(torch.from_numpy(vectors), max_iter=options.max_iter)
        return
    mean = vectors.mean(0)
    x = torch.from_numpy((vectors - mean) / np.std(vectors - mean))
    model = {"topk": lambda: sae.TopKSAE(x.shape[1], k, top_k=options.top_k),
             "batchtopk": lambda: sae.BatchTopKSAE(x.shape[1], k, top_k=options.top_k * options.fit_batch),
             "jumprelu": lambda: sae.JumpSAE(x.shape[1], k)}[method]()

    def loss(x, x_hat, pre_codes, codes, dictionary):
        mse = (x - x_hat).square().mean()
        if method != "jumprelu":
            return mse
        active = sae.heaviside(torch.relu(pre_codes), torch.exp(model.thresholds), model.kernel_fn,
                               model.bandwidth)
        return mse + options.sparsity_penalty * active.sum(-1).mean()

    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr)
    sae.train_sae(model, batches(x, options.fit_batch), loss, optimizer, nb_epochs=options.epochs,
                  monitoring=0)
    model.eval()


def library_fit(method: str, vectors: np.ndarray, k: int, options: FitOptions) -> None:
    """The same fit as `methods.fit`, the library called directly."""
    if get(method).library == "overcomplete":
        overcomplete_fit(method, vectors, k, options)
        return
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.decomposition import NMF, PCA

    if method == "kmeans":
        directions = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
        MiniBatchKMeans(n_clusters=k, random_state=0, batch_size=2048, n_init=3).fit(directions)
    elif method == "pca":
        PCA(n_components=k, random_state=0).fit(vectors)
    else:
        NMF(n_components=k, init="nndsvda", max_iter=options.max_iter, random_state=0).fit(
            np.maximum(vectors, 0))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("images")
    parser.add_argument("--layer", default="_blocks.8")
    parser.add_argument("--atoms", type=int, default=16)
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--per-image", type=int, default=200)
    parser.add_argument("--cache", default="/tmp/bench_dictionary_vectors.npy")
    parser.add_argument("--methods", default="kmeans,pca,nmf")
    parser.add_argument("--fit-vectors", type=int, default=None,
                        help="fit on the first N of the fit rows (held-out rows unchanged)")
    parser.add_argument("--epochs", type=int, default=FitOptions.epochs)
    parser.add_argument("--top-k", type=int, default=FitOptions.top_k)
    args = parser.parse_args()
    options = FitOptions(epochs=args.epochs, top_k=args.top_k)
    cache = Path(args.cache)
    if cache.is_file():
        vectors = np.load(cache)
    else:
        model = phosphene.load_model("efficientnet_lite0", device="cpu")
        vectors = sample_activations(model, args.layer, args.images, per_image=args.per_image,
                                     max_vectors=args.vectors, progress=False).vectors
        np.save(cache, vectors)
    fit_rows, held = split_sample(vectors, 0.1, 0)
    fit_rows = fit_rows[:args.fit_vectors] if args.fit_vectors else fit_rows
    scale = 1e5 / len(fit_rows)
    print(f"{len(fit_rows)} fit + {len(held)} held-out vectors of {vectors.shape[1]} channels; "
          f"load {os.getloadavg()[0]:.1f}")
    for method in args.methods.split(","):
        wrapper, library = [], []
        for _ in range(2):
            with Timer() as t:
                fitted = methods.fit(method, fit_rows, args.atoms, options)
            wrapper.append(t.wall)
            with Timer() as t:
                library_fit(method, fit_rows, args.atoms, options)
            library.append(t.wall)
        metrics, _ = methods.fit_metrics(method, fitted, fit_rows, held, options)
        library_name = get(method).library
        print(f"{method:9s} K={args.atoms}: R² held-out {metrics['r2_held_out']:.3f}, sparsity "
              f"{metrics['sparsity']:.2f} (L0 {metrics['l0']:.2f}), dead {metrics['dead_atoms']}; fit s per "
              f"1e5 vectors: wrapper {min(wrapper) * scale:.2f}, {library_name} {min(library) * scale:.2f} "
              f"(ratio {min(wrapper) / min(library):.2f}); load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

"""Dictionary methods: held-out R² and fit time per 1e5 activation vectors, phosphene's wrapper
(`phosphene.dictionary.methods.fit` + metrics) next to calling scikit-learn directly on the same
vectors, paired and alternating (wrapper, library, wrapper, library) so load changes hit both.

    python benchmarks/bench_dictionary.py IMAGES --layer _blocks.8 --atoms 16 --vectors 100000

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
from phosphene.dictionary.sampling import sample_activations


def library_fit(method: str, vectors: np.ndarray, k: int) -> None:
    """The same fit as `methods.fit`, scikit-learn called directly."""
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.decomposition import NMF, PCA

    if method == "kmeans":
        directions = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
        MiniBatchKMeans(n_clusters=k, random_state=0, batch_size=2048, n_init=3).fit(directions)
    elif method == "pca":
        PCA(n_components=k, random_state=0).fit(vectors)
    else:
        NMF(n_components=k, init="nndsvda", max_iter=methods.NMF_MAX_ITER, random_state=0).fit(
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
    args = parser.parse_args()
    cache = Path(args.cache)
    if cache.is_file():
        vectors = np.load(cache)
    else:
        model = phosphene.load_model("efficientnet_lite0", device="cpu")
        vectors = sample_activations(model, args.layer, args.images, per_image=args.per_image,
                                     max_vectors=args.vectors, progress=False).vectors
        np.save(cache, vectors)
    fit_rows, held = split_sample(vectors, 0.1, 0)
    scale = 1e5 / len(fit_rows)
    print(f"{len(fit_rows)} fit + {len(held)} held-out vectors of {vectors.shape[1]} channels; "
          f"load {os.getloadavg()[0]:.1f}")
    for method in args.methods.split(","):
        wrapper, library = [], []
        for _ in range(2):
            with Timer() as t:
                fitted = methods.fit(method, fit_rows, args.atoms)
            wrapper.append(t.wall)
            with Timer() as t:
                library_fit(method, fit_rows, args.atoms)
            library.append(t.wall)
        metrics, _ = methods.fit_metrics(method, fitted.components, fitted.mean, fit_rows, held)
        print(f"{method:7s} K={args.atoms}: R² held-out {metrics['r2_held_out']:.3f}, sparsity "
              f"{metrics['sparsity']:.2f}, dead {metrics['dead_atoms']}; fit s per 1e5 vectors: wrapper "
              f"{min(wrapper) * scale:.2f}, scikit-learn {min(library) * scale:.2f} "
              f"(ratio {min(wrapper) / min(library):.2f}); load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

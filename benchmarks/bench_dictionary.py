"""Dictionary methods: held-out R² and fit CPU time per 1e5 activation vectors, phosphene's wrapper
(`phosphene.dictionary.methods.fit`) next to calling the library (scikit-learn or overcomplete)
directly on the same vectors.

    python benchmarks/bench_dictionary.py IMAGES --layer _blocks.8 --atoms 16 --vectors 100000 \
        --methods kmeans,pca,nmf,topk,batchtopk,jumprelu,seminmf,convexnmf --rounds 7

Timing: single-thread process CPU time (``OMP_NUM_THREADS=1`` set before numpy/torch import,
``torch.set_num_threads(1)``, `time.process_time`), so other jobs on the machine change the wall
time but hardly the CPU time; ``--rounds`` rounds per method, alternating the order (wrapper then
library, library then wrapper, ...) so a slow stretch hits both; the median over rounds of the
per-round ratio wrapper / library is reported. Before a method's rounds, both sides run once
untimed on 4,096 rows (imports and first calls). R² of the held-out vectors is computed for both sides:
the wrapper's with `methods.fit_metrics`, the library's from its own fitted object (scikit-learn's
``transform`` / ``inverse_transform``, the SAE's own forward pass, SemiNMF's ``encode``).

The vectors are sampled once with `sample_activations` (cached in --cache as .npy).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy / torch are imported
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import phosphene  # noqa: E402
from phosphene.dictionary import methods  # noqa: E402
from phosphene.dictionary.learn import split_sample  # noqa: E402
from phosphene.dictionary.overcomplete_methods import batches, import_overcomplete  # noqa: E402
from phosphene.dictionary.registry import FitOptions, get  # noqa: E402
from phosphene.dictionary.sampling import sample_activations  # noqa: E402

torch.set_num_threads(1)


def r2(vectors: np.ndarray, reconstruction: np.ndarray) -> float:
    """1 - |x - x̂|² / |x - mean(x)|², summed over the vectors (as `methods.fit_metrics`)."""
    return float(1 - np.square(vectors - reconstruction).sum() / np.square(vectors - vectors.mean(0)).sum())


def overcomplete_fit(method: str, vectors: np.ndarray, k: int, options: FitOptions):
    """The same fit as `methods.fit`, overcomplete called directly (the same standardization, SAE,
    batches, optimizer and loss for the SAEs; the same solver for the NMFs); returns a function
    giving the library's reconstruction of held-out vectors."""
    sae = import_overcomplete("sae")
    optimization = import_overcomplete("optimization")
    torch.manual_seed(options.seed)
    if method in ("seminmf", "convexnmf"):
        if method == "seminmf":
            with torch.no_grad():
                model = optimization.SemiNMF(k, solver="mu")
                _, dictionary = model.fit(torch.from_numpy(vectors), max_iter=options.max_iter)
        else:  # ConvexNMF encodes only its fit vectors: new ones through SemiNMF's encoder, as phosphene
            _, dictionary = optimization.ConvexNMF(k, solver="pgd").fit(torch.from_numpy(vectors),
                                                                        max_iter=options.max_iter)
            model = optimization.SemiNMF(k, solver="mu")
            model.D = dictionary.detach()
            model._set_fitted()

        def reconstruct(held: np.ndarray) -> np.ndarray:
            torch.manual_seed(options.seed)
            with torch.no_grad():
                return (model.encode(torch.from_numpy(held), max_iter=options.max_iter) @ model.D).numpy()
        return reconstruct
    mean = vectors.mean(0)
    centred = vectors - mean
    scale = np.std(centred)
    centred /= scale
    x = torch.from_numpy(centred)
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
                  monitoring=0, device="cpu")
    model.eval()

    def reconstruct(held: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            _, _, x_hat = model(torch.from_numpy((held - mean) / scale))
        return x_hat.numpy() * scale + mean
    return reconstruct


def library_fit(method: str, vectors: np.ndarray, k: int, options: FitOptions):
    """The same fit as `methods.fit`, the library called directly; returns a function giving the
    library's reconstruction of held-out vectors."""
    if get(method).library == "overcomplete":
        return overcomplete_fit(method, vectors, k, options)
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.decomposition import NMF, PCA

    if method == "kmeans":
        norms = np.linalg.norm(vectors, axis=1)
        keep = norms > 0
        directions = vectors / norms[:, None] if keep.all() else vectors[keep] / norms[keep, None]
        km = MiniBatchKMeans(n_clusters=k, random_state=options.seed, batch_size=2048, n_init=3)
        km.fit(directions)
        centres = km.cluster_centers_ / np.linalg.norm(km.cluster_centers_, axis=1, keepdims=True)

        def reconstruct(held: np.ndarray) -> np.ndarray:
            projections = held @ centres.T
            nearest = projections.argmax(1)
            return projections[np.arange(len(held)), nearest, None] * centres[nearest]
        return reconstruct
    if method == "pca":
        pca = PCA(n_components=k, random_state=options.seed).fit(vectors)
        return lambda held: pca.inverse_transform(pca.transform(held))
    nmf = NMF(n_components=k, init="nndsvda", max_iter=options.max_iter, random_state=options.seed)
    nmf.fit(np.maximum(vectors, 0))
    return lambda held: nmf.transform(np.maximum(held, 0)) @ nmf.components_


def cpu_seconds(call, *arguments):
    """(process CPU seconds of ``call(*arguments)``, its result)."""
    started = time.process_time()
    result = call(*arguments)
    return time.process_time() - started, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("images")
    parser.add_argument("--layer", default="_blocks.8")
    parser.add_argument("--atoms", type=int, default=16)
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--per-image", type=int, default=200)
    parser.add_argument("--cache", default="/tmp/bench_dictionary_vectors.npy")
    parser.add_argument("--methods", default="kmeans,pca,nmf")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per method")
    parser.add_argument("--rounds-for", default="",
                        help="per-method rounds, e.g. seminmf=3,convexnmf=5 (others: --rounds)")
    parser.add_argument("--fit-vectors", type=int, default=None,
                        help="fit on the first N of the fit rows (held-out rows unchanged)")
    parser.add_argument("--epochs", type=int, default=FitOptions.epochs)
    parser.add_argument("--top-k", type=int, default=FitOptions.top_k)
    parser.add_argument("--json", default=None, help="write the per-round times and the table here")
    args = parser.parse_args()
    options = FitOptions(epochs=args.epochs, top_k=args.top_k)
    rounds_for = dict(item.split("=") for item in args.rounds_for.split(",") if item)
    cache = Path(args.cache)
    if cache.is_file():
        vectors = np.load(cache)
    else:
        model = phosphene.load_model("efficientnet_lite0", device="cpu")
        vectors = sample_activations(model, args.layer, args.images, per_image=args.per_image,
                                     max_vectors=args.vectors, progress=False).vectors
        np.save(cache, vectors)
    fit_rows, held = split_sample(vectors, 0.1, 0)
    fit_rows = np.ascontiguousarray(fit_rows[:args.fit_vectors] if args.fit_vectors else fit_rows)
    scale = 1e5 / len(fit_rows)
    print(f"{len(fit_rows)} fit + {len(held)} held-out vectors of {vectors.shape[1]} channels, "
          f"K={args.atoms}; "
          f"torch threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}; "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    print("| method | R² held-out (phosphene) | R² held-out (library) | phosphene CPU s / 1e5 "
          "| library CPU s / 1e5 | ratio (median of rounds) | ratio range | rounds | load |", flush=True)
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    record = {"fit_vectors": len(fit_rows), "held_out": len(held), "atoms": args.atoms, "methods": {}}
    for method in args.methods.split(","):
        warm = FitOptions(epochs=1, top_k=args.top_k, max_iter=5)  # imports and first calls, untimed
        for fit in (methods.fit, library_fit):
            fit(method, fit_rows[:4096], args.atoms, warm)
        wrapper, library, ratios, loads = [], [], [], []
        for round_ in range(int(rounds_for.get(method, args.rounds))):
            loads.append(os.getloadavg()[0])
            order = ("wrapper", "library") if round_ % 2 == 0 else ("library", "wrapper")
            seconds = {}
            for side in order:
                fit = methods.fit if side == "wrapper" else library_fit
                seconds[side], result = cpu_seconds(fit, method, fit_rows, args.atoms, options)
                if side == "wrapper":
                    fitted = result
                else:
                    reconstruct = result
            wrapper.append(seconds["wrapper"])
            library.append(seconds["library"])
            ratios.append(seconds["wrapper"] / seconds["library"])
        metrics, _ = methods.fit_metrics(method, fitted, fit_rows, held, options)
        library_r2 = r2(held, reconstruct(held))
        row = {"r2_wrapper": metrics["r2_held_out"], "r2_library": library_r2,
               "wrapper_s_per_1e5": statistics.median(wrapper) * scale,
               "library_s_per_1e5": statistics.median(library) * scale,
               "ratio_median": statistics.median(ratios), "ratios": ratios, "wrapper_s": wrapper,
               "library_s": library, "load": [min(loads), max(loads)]}
        record["methods"][method] = row
        print(f"| {method} | {row['r2_wrapper']:.3f} | {library_r2:.3f} | {row['wrapper_s_per_1e5']:.2f} | "
              f"{row['library_s_per_1e5']:.2f} | **{row['ratio_median']:.3f}** | "
              f"{min(ratios):.2f}-{max(ratios):.2f} | {len(ratios)} | {min(loads):.1f}-{max(loads):.1f} |",
              flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()

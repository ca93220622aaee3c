"""Top-5 cosine retrieval speed: faiss IndexFlatIP against brute-force numpy on one gallery, in one run.

    OMP_NUM_THREADS=1 .venv/bin/python bench/retrieval_speed.py [--gallery 100000] [--dim 512] [--queries 1000]

Prints queries/s of each, faiss's recall@5 against the exact numpy result, and last the speed ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def brute_force_top5(queries: np.ndarray, gallery: np.ndarray, batch: int = 256) -> np.ndarray:
    """Exact top-5 by inner product: one matrix product per batch, argpartition, then a sort of five."""
    out = np.empty((len(queries), 5), np.int64)
    for start in range(0, len(queries), batch):
        sims = queries[start : start + batch] @ gallery.T
        part = np.argpartition(-sims, 4, axis=1)[:, :5]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1)
        out[start : start + batch] = np.take_along_axis(part, order, axis=1)
    return out


def main() -> None:
    import faiss

    from spotter.whale.retrieval import CosineIndex, l2_normalize

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gallery", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    # clustered embeddings (individuals with several photos) rather than pure noise, so neighbours are real
    centres = rng.standard_normal((args.gallery // 4, args.dim), dtype=np.float32)

    def sample(n: int) -> np.ndarray:
        noise = rng.standard_normal((n, args.dim), dtype=np.float32)
        return l2_normalize(centres[rng.integers(0, len(centres), n)] + 0.5 * noise)

    gallery, queries = sample(args.gallery), sample(args.queries)
    print(f"gallery {args.gallery} x {args.dim}, {args.queries} queries, faiss {faiss.__version__}, "
          f"faiss threads {faiss.omp_get_max_threads()}")

    start = time.perf_counter()
    index = CosineIndex(gallery)
    build = time.perf_counter() - start
    # one small search each first: faiss's first call pays a one-off setup cost (~1 s here)
    index.search(queries[:32], 5)
    brute_force_top5(queries[:32], gallery)

    start = time.perf_counter()
    _, faiss_ids = index.search(queries, 5)
    faiss_time = time.perf_counter() - start

    start = time.perf_counter()
    numpy_ids = brute_force_top5(queries, gallery)
    numpy_time = time.perf_counter() - start

    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(faiss_ids, numpy_ids)])
    print(f"faiss index build: {build:.2f} s")
    print(f"faiss IndexFlatIP: {args.queries / faiss_time:,.0f} queries/s ({faiss_time:.2f} s)")
    print(f"numpy brute force: {args.queries / numpy_time:,.0f} queries/s ({numpy_time:.2f} s)")
    print(f"faiss recall@5 vs brute force: {recall:.4f}")
    print(f"speed ratio faiss / numpy: {numpy_time / faiss_time:.2f}x")


if __name__ == "__main__":
    main()

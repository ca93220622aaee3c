"""ROC AUC of the de-Doppler baseline per needle kind, at SNR >= 20 and over the default SNR range.

    OMP_NUM_THREADS=1 .venv/bin/python bench/dedoppler_auc.py [--n 200] [--seed 0]

For each kind, `--n` positives (with the default mix of partial, pulsed and one/two-ON-panel needles)
are scored against the same `--n` negatives (background, RFI and hard negatives in the default mix).
"""

from __future__ import annotations

import argparse

import numpy as np

from spotter.metrics import roc_auc
from spotter.seti import NEEDLE_KINDS
from spotter.seti.dedoppler import Dedoppler
from spotter.seti.needles import NeedleRanges
from spotter.seti.synth import make_cadence, plan_split, sample_rng


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="positives per kind, and negatives")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    search = Dedoppler()
    plan = plan_split(args.n, 0.0, np.random.default_rng(args.seed))
    negatives = [
        search.search(make_cadence(sample_rng(args.seed, 0, i), 0, kind)[0]).score for i, (_, _, kind) in enumerate(plan)
    ]
    print(f"{'kind':12s} {'SNR 20-60':>10s} {'SNR 4-60':>10s}")
    for k, kind in enumerate(NEEDLE_KINDS, start=1):
        aucs = []
        for r, ranges in enumerate((NeedleRanges(snr=(20.0, 60.0)), NeedleRanges())):
            rngs = (sample_rng(args.seed, 10 * k + r, i) for i in range(args.n))
            positives = [search.search(make_cadence(rng, 1, kind, ranges)[0]).score for rng in rngs]
            aucs.append(roc_auc([1] * len(positives) + [0] * len(negatives), positives + negatives))
        print(f"{kind:12s} {aucs[0]:10.4f} {aucs[1]:10.4f}")


if __name__ == "__main__":
    main()

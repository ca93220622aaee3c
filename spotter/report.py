"""Run reports: matplotlib figures saved as PNGs and one self-contained HTML page that shows them."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from spotter.io import atomic_path, write_text


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Writes a figure as PNG atomically and closes it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight")
    pyplot().close(fig)
    return Path(path)


def roc_figure(targets: np.ndarray, scores_by_name: dict[str, np.ndarray]):
    """ROC curves of several scorings of the same targets, AUC in the legend."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, scores in scores_by_name.items():
        fpr, tpr, _ = roc_curve(targets >= 0.5, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(targets >= 0.5, scores):.4f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def histogram_figure(scores: np.ndarray, groups: np.ndarray, xlabel: str = "score"):
    """Overlaid score histograms, one per group (e.g. per class), each normalized to its own count."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.linspace(float(np.min(scores)), float(np.max(scores)) + 1e-9, 41)
    for group in pd.unique(groups):
        chosen = scores[groups == group]
        ax.hist(chosen, bins=bins, alpha=0.5, density=True, label=f"{group} (n={len(chosen)})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return fig


@dataclass
class Report:
    """An HTML page of headed sections, each with tables, figures and text."""

    title: str
    sections: list[tuple[str, list[str]]] = field(default_factory=list)

    def section(self, heading: str) -> list[str]:
        parts: list[str] = []
        self.sections.append((heading, parts))
        return parts

    @staticmethod
    def table(frame: pd.DataFrame, float_format: str = "{:.4f}") -> str:
        return frame.to_html(index=False, float_format=float_format.format, border=0, classes="table")

    @staticmethod
    def image(name: str, caption: str = "") -> str:
        return f'<figure><img src="{html.escape(name)}"><figcaption>{html.escape(caption)}</figcaption></figure>'

    @staticmethod
    def text(value: str) -> str:
        return f"<p>{html.escape(value)}</p>"

    def write(self, path: str | Path) -> Path:
        body = "".join(f"<h2>{html.escape(h)}</h2>{''.join(parts)}" for h, parts in self.sections)
        page = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
            "table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}"
            "img{max-width:100%}figure{display:inline-block;margin:0 1em 1em 0}</style></head>"
            f"<body><h1>{html.escape(self.title)}</h1>{body}</body></html>\n"
        )
        write_text(path, page)
        return Path(path)



"""Run reports: matplotlib figures and thumbnails beside one HTML page rendered from the package's templates."""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from spotter.engine.rundir import RunDir
from spotter.io import atomic_path, write_text

ASSETS = "report_assets"  # the folder of a report's figures and thumbnails, inside the run folder
TEMPLATES = "templates"  # package folder of the Jinja2 templates and the stylesheet
DPI = 144  # figures are saved at 1.5x and shown at 96 px per inch, so they stay sharp on dense screens
SCREEN_DPI = 96

MODEL_COLOR = "#1f5fa8"
BASELINE_COLOR = "#d9822b"
GOOD_COLOR = "#2e8b57"
COLORS = (MODEL_COLOR, BASELINE_COLOR, GOOD_COLOR, "#8e44ad", "#c0392b", "#7f8c8d", "#16a085", "#b7950b")
# one per CV fold, none of them the model or baseline colour (those mean "model" and "baseline" on every page)
FOLD_COLORS = ("#8e44ad", "#16a085", "#b7950b", "#c0392b", "#34495e", "#e67e22", "#7f8c8d", "#2980b9", "#d35400", "#27ae60")

# one look for every figure of every task (applied per figure, never to the caller's matplotlib state)
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e3e3e3",
    "grid.linewidth": 0.8,
    "axes.axisbelow": True,
    "axes.edgecolor": "#777777",
    "axes.prop_cycle": None,  # filled in by `figure_style` (a cycler needs matplotlib imported)
    "figure.facecolor": "white",
}


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def figure_style() -> Iterator[None]:
    """The report look for the figures drawn inside the block."""
    from cycler import cycler

    with pyplot().rc_context({**STYLE, "axes.prop_cycle": cycler(color=COLORS)}):
        yield


# ------------------------------------------------------------------------------------------- page parts


@dataclass(frozen=True)
class Figure:
    """An image on the page.

    Attributes:
        src: Its address relative to the page.
        caption: One sentence: the question the figure answers.
        width: Display width in CSS pixels (0: the image's own).
        alt: Text for screen readers and broken images.
    """

    src: str
    caption: str
    width: int = 0
    alt: str = ""


@dataclass(frozen=True)
class Table:
    """A table of already formatted cells; `numeric` columns are right-aligned."""

    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    numeric: frozenset[str] = field(default_factory=frozenset)


def format_value(value, digits: int = 4) -> str:
    """A cell's text: floats to `digits` decimals, missing values as an en dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value)


def table(frame: pd.DataFrame, caption: str = "", digits: Mapping[str, int] | None = None) -> Table:
    """A `Table` from a data frame: numbers formatted (4 decimals unless `digits` says otherwise), NaN as –."""
    digits = dict(digits or {})
    numeric = frozenset(str(c) for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]))
    rows = [
        [format_value(v, digits.get(str(c), 4)) for c, v in zip(frame.columns, row)]
        for row in frame.itertuples(index=False, name=None)
    ]
    return Table([str(c) for c in frame.columns], rows, caption, numeric)


@dataclass(frozen=True)
class Callout:
    """A highlighted sentence: `kind` is "good", "warn" or "note"."""

    kind: str
    text: str


@dataclass(frozen=True)
class Card:
    """A headline number: what it is, its value, a line of detail."""

    label: str
    value: str
    detail: str = ""


class ReportAssets:
    """The report's image folder inside a run folder, and the addresses the page uses for its files.

    Args:
        run: The run folder.
    """

    def __init__(self, run: RunDir) -> None:
        self.folder = run.file(ASSETS)

    def path(self, name: str) -> Path:
        """Where to write the asset `name` (a path relative to the folder; its parent is created)."""
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def src(self, name: str) -> str:
        """The asset's address relative to the page (report.html sits beside the folder)."""
        return quote(f"{self.folder.name}/{name}")

    def figure(self, fig, name: str, caption: str, alt: str = "") -> Figure:
        """Saves a matplotlib figure as PNG `name` (closing it) and returns it as a page `Figure`."""
        path = self.path(name)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
        width_inches = fig.get_window_extent().width / fig.dpi  # before tight cropping: close enough for layout
        pyplot().close(fig)
        return Figure(self.src(name), caption, _display_width(path, width_inches), alt or caption)


def _display_width(path: Path, fallback_inches: float) -> int:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return round(image.width * SCREEN_DPI / DPI)
    except OSError:
        return round(fallback_inches * SCREEN_DPI)


@functools.lru_cache(maxsize=1)
def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("spotter", TEMPLATES),
        autoescape=True,  # every value is text: an id holding "<script>" shows as those characters
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = format_value
    env.globals["zip"] = zip
    return env


def render_page(template: str, path: str | Path, **context) -> Path:
    """Renders a report template to `path` (atomically).

    Args:
        template: File name in `spotter/templates/`, e.g. "seti_report.html.j2".
        path: The page to write.
        context: The template's variables.
    """
    from datetime import datetime

    from spotter import __version__

    page = _environment().get_template(template).render(
        version=__version__, written=datetime.now().strftime("%Y-%m-%d %H:%M"), **context
    )
    write_text(path, page)
    return Path(path)


# ------------------------------------------------------------------------------------------- shared figures


def roc_figure(targets: np.ndarray, scores_by_name: Mapping[str, np.ndarray], colors: Sequence[str] = COLORS):
    """ROC curves of several scorings of the same rows, each AUC in the legend."""
    from sklearn.metrics import roc_auc_score, roc_curve

    positive = np.asarray(targets) >= 0.5
    with figure_style():
        fig, ax = pyplot().subplots(figsize=(4.6, 4.4))
        for (name, scores), color in zip(scores_by_name.items(), colors):
            fpr, tpr, _ = roc_curve(positive, scores)
            ax.plot(fpr, tpr, color=color, linewidth=2,
                    label=f"{name}: AUC {roc_auc_score(positive, scores):.3f}")
        ax.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=1, label="chance: AUC 0.5")
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate")
        ax.set_aspect("equal")
        ax.legend(loc="lower right", frameon=True)
    return fig


def histogram_figure(
    scores: np.ndarray, groups: np.ndarray, xlabel: str = "score", colors: Sequence[str] = COLORS,
    order: Sequence[str] | None = None,
):
    """Overlaid score histograms, one per group (e.g. per class), each normalized to its own count.

    Args:
        order: The groups in drawing (and colour) order; by default as they first appear.
    """
    scores, groups = np.asarray(scores, dtype=np.float64), np.asarray(groups)
    with figure_style():
        fig, ax = pyplot().subplots(figsize=(5.2, 3.2))
        low, high = float(np.min(scores)), float(np.max(scores))
        bins = np.linspace(low, high + max(high - low, 1e-6) * 1e-3, 41)
        for group, color in zip(order if order is not None else pd.unique(groups), colors):
            chosen = scores[groups == group]
            if not len(chosen):
                continue
            ax.hist(chosen, bins=bins, density=True, alpha=0.55, color=color, label=f"{group} (n={len(chosen):,})")
        ax.set(xlabel=xlabel, ylabel="density (each class sums to 1)")
        ax.legend()
    return fig


def grouped_bars_figure(
    frame: pd.DataFrame, label: str, values: Mapping[str, str], xlabel: str, title: str = "",
    colors: Sequence[str] = COLORS, xlim: tuple[float, float] | None = None, reference: float | None = None,
    row_colors: Sequence[str] | None = None,
):
    """Horizontal bars, one group of bars per row of `frame` (top to bottom), one bar per column in `values`.

    Args:
        frame: One row per category.
        label: The column naming each row's category.
        values: Legend name → column of the bar's value (NaN draws no bar).
        xlabel: What the bars measure.
        reference: An x value drawn as a dotted line (e.g. chance AUC 0.5).
        row_colors: With a single series, a colour per row (e.g. to set summary rows apart).
    """
    count, series = len(frame), list(values.items())
    with figure_style():
        fig, ax = pyplot().subplots(figsize=(5.2, 0.6 + 0.32 * count * max(len(series), 1) + 0.25 * count))
        height = 0.8 / max(len(series), 1)
        positions = np.arange(count)
        for k, ((name, column), color) in enumerate(zip(series, colors)):
            bars = frame[column].to_numpy(np.float64)
            y = positions - 0.4 + height * (k + 0.5)
            fill = list(row_colors) if row_colors is not None and len(series) == 1 else color
            ax.barh(y, np.nan_to_num(bars), height=height * 0.92, color=fill, label=name)
            for yy, value in zip(y, bars):
                if np.isfinite(value):
                    ax.text(value, yy, f" {value:.3f}", va="center", fontsize=7, color="#333333")
        ax.set_yticks(positions, [str(v) for v in frame[label]])
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        if reference is not None:
            ax.axvline(reference, color="#999999", linestyle=":", linewidth=1)
        if xlim is not None:
            ax.set_xlim(*xlim)
        ax.set_xlabel(xlabel)
        if title:
            ax.set_title(title, loc="left")
        if len(series) > 1:  # above the bars: inside, it would hide a bar or its value
            ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=len(series), frameon=False)
    return fig

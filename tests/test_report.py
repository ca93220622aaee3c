"""Shared report parts: the templates ship in the package, pages are autoescaped, tables format their cells."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pandas as pd
import pytest

from spotter.engine.rundir import RunDir
from spotter.report import Callout, Card, ReportAssets, format_value, pyplot, render_page, table

TEMPLATES = ("base.html.j2", "macros.html.j2", "report.css", "seti_report.html.j2", "whale_report.html.j2")


@pytest.mark.parametrize("name", TEMPLATES)
def test_templates_are_package_data(name: str) -> None:
    assert (files("spotter") / "templates" / name).is_file()


def test_base_page_escapes_every_value(tmp_path) -> None:
    from spotter.report import _environment

    evil = '<img src=x onerror="alert(1)">'
    template = _environment().from_string(
        '{% extends "base.html.j2" %}{% import "macros.html.j2" as ui %}'
        "{% block content %}{{ ui.cards(cards) }}{{ ui.callout(note) }}{{ ui.table(t) }}{% endblock %}"
    )
    page = template.render(title=evil, sections=[("a", evil)], assets="report_assets", version="0", written="now",
                           cards=[Card(evil, "1")], note=Callout("warn", evil),
                           t=table(pd.DataFrame({"id": [evil], "auc": [0.5]})))
    assert "<img" not in page and page.count("&lt;img src=x onerror=&#34;alert(1)&#34;&gt;") == 6
    # the stylesheet is inline and names no web font or remote file: the page renders offline
    assert "<style>" in page and "@import" not in page and "url(" not in page and "http" not in page


def test_render_page_writes_atomically(tmp_path) -> None:
    path = render_page("base.html.j2", tmp_path / "page.html", title="t", sections=[], assets="report_assets")
    assert path.read_text().startswith("<!doctype html>") and not list(tmp_path.glob(".*.tmp"))


def test_table_formats_numbers_and_missing_values() -> None:
    t = table(pd.DataFrame({"group": ["a", "b"], "count": [1200, 3], "auc": [0.91234, np.nan]}), digits={"auc": 3})
    assert t.rows == [["a", "1,200", "0.912"], ["b", "3", "–"]]
    assert t.numeric == {"count", "auc"}
    assert format_value(None) == "–" and format_value(True) == "yes"


def test_figures_go_to_the_assets_folder(tmp_path) -> None:
    assets = ReportAssets(RunDir(tmp_path))
    fig, ax = pyplot().subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, 1])
    figure = assets.figure(fig, "line.png", "Does a line show?")
    assert figure.src == "report_assets/line.png" and (tmp_path / figure.src).stat().st_size > 500
    assert 250 < figure.width < 320  # 3 inches at 96 px per inch, less the trimmed margins
    assert assets.src("thumbs/a b.jpg") == "report_assets/thumbs/a%20b.jpg"

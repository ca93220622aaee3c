"""Output checks: they refuse what cannot be written, and create nothing themselves."""

from __future__ import annotations

import pytest

from spotter.errors import SpotterError
from spotter.io import check_output_file, check_output_folder


def test_output_checks_create_nothing(tmp_path) -> None:
    assert check_output_file(tmp_path / "a" / "b" / "sub.csv") == tmp_path / "a" / "b" / "sub.csv"
    assert check_output_folder(tmp_path / "c" / "run", empty=True) == tmp_path / "c" / "run"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("make, check, message", [
    (lambda p: p.mkdir(), check_output_file, "is a folder"),
    (lambda p: p.parent.joinpath("f").write_text("x"), lambda p: check_output_file(p.parent / "f" / "x.csv"),
     "is not a folder"),
    (lambda p: p.write_text("x"), check_output_folder, "is not a folder"),
    (lambda p: (p.mkdir(), (p / "x").write_text("x")), lambda p: check_output_folder(p, empty=True), "not empty"),
])
def test_output_checks_refuse_in_one_line_naming_the_path(tmp_path, make, check, message) -> None:
    target = tmp_path / "out"
    make(target)
    with pytest.raises(SpotterError, match=message) as info:
        check(target)
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)

"""Reading `file:` series: the CSV format, where references resolve, and the telemetry root's bound."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from flowtime.errors import SeriesFileError
from flowtime.series_files import beside, parse_series_csv, within


def test_missing_bins_are_zero_and_empty_or_nan_cells_are_nan() -> None:
    values = parse_series_csv("bin_index,value\n3,4.5\n0,1\n1,\n\n4,NaN\n", "a.csv", 6)
    assert values[[0, 2, 3, 5]].tolist() == [1.0, 0.0, 4.5, 0.0]
    assert math.isnan(values[1]) and math.isnan(values[4])


def test_a_class_column_sums_the_classes_of_each_bin() -> None:
    text = "bin_index,classId,value\n0,VIP,2\n0,Std,3\n1,VIP,1\n"
    assert parse_series_csv(text, "a.csv", 3).tolist() == [5.0, 1.0, 0.0]


@pytest.mark.parametrize(("text", "message"), [
    ("", "a.csv line 1: the header must be exactly `bin_index,value` or `bin_index,classId,value`, got an empty "
         "file"),
    ("t,value\n0,1\n", "a.csv line 1: the header must be exactly `bin_index,value` or `bin_index,classId,value`, "
                       "got 't,value'"),
    ("bin_index,value,extra\n", "a.csv line 1: the header must be exactly"),
    ("bin_index,value\n0,1\n-1,2\n", "a.csv line 3: bin_index -1 is outside the grid (0..2)"),
    ("bin_index,value\n3,1\n", "a.csv line 2: bin_index 3 is outside the grid (0..2)"),
    ("bin_index,value\n1,1\n2,1\n1,5\n", "a.csv line 4: bin_index 1 is given twice (first on line 2)"),
    ("bin_index,classId,value\n0,VIP,1\n0,VIP,2\n", "a.csv line 3: bin_index 0 for class 'VIP' is given twice"),
    ("bin_index,value\nx,1\n", "a.csv line 2: bin_index must be a whole number, got 'x'"),
    ("bin_index,value\n0,1,2\n", "a.csv line 2: expected 2 cells (bin_index,value), got 3"),
    ("bin_index,value\n0,many\n", "a.csv line 2: value must be a number (or empty / NaN), got 'many'"),
])
def test_every_malformed_file_names_the_file_and_line(text: str, message: str) -> None:
    with pytest.raises(SeriesFileError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace(".", r"\.").replace("`", "`")):
        parse_series_csv(text, "a.csv", 3)


def _csv(path: Path, *values: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("bin_index,value\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)))
    return path


def test_references_resolve_beside_the_model_absolute_and_as_file_urls(tmp_path: Path) -> None:
    model = tmp_path / "m" / "model.yaml"
    _csv(tmp_path / "m" / "tele" / "a.csv", 1, 2)
    other = _csv(tmp_path / "elsewhere" / "b.csv", 3, 4)
    read = beside(model)
    assert read("tele/a.csv", 2).values.tolist() == [1.0, 2.0]
    assert read("//tele/a.csv", 2).values.tolist() == [1.0, 2.0]  # file://tele/a.csv
    assert read(str(other), 2).values.tolist() == [3.0, 4.0]
    assert read("//" + str(other), 2).values.tolist() == [3.0, 4.0]  # file:///abs/b.csv
    assert read("tele/a.csv", 2).key == read("//tele/../tele/a.csv", 2).key == str(tmp_path / "m/tele/a.csv")


def test_a_missing_file_or_a_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    read = beside(tmp_path / "model.yaml")
    with pytest.raises(SeriesFileError, match=r"nope\.csv: file not found"):
        read("nope.csv", 2)
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(SeriesFileError, match="is a folder"):
        read("dir.csv", 2)


def test_the_telemetry_root_reads_inside_it_and_names_files_relative_to_it(tmp_path: Path) -> None:
    _csv(tmp_path / "root" / "tele" / "a.csv", 7)
    read = within(tmp_path / "root")
    assert read("tele/a.csv", 1).values.tolist() == [7.0]
    assert read("//tele/a.csv", 1).values.tolist() == [7.0]
    assert read(str(tmp_path / "root" / "tele" / "a.csv"), 1).values.tolist() == [7.0]
    with pytest.raises(SeriesFileError, match=r"^tele/b\.csv: file not found$"):
        read("tele/b.csv", 1)


@pytest.mark.parametrize("ref", ["../secret.csv", "tele/../../secret.csv", "{secret}", "//{secret}", "link.csv",
                                 "tele/../link.csv"])
def test_nothing_outside_the_telemetry_root_is_read(tmp_path: Path, ref: str) -> None:
    secret = _csv(tmp_path / "secret.csv", 1)
    root = tmp_path / "root"
    _csv(root / "tele" / "a.csv", 1)
    os.symlink(secret, root / "link.csv")
    with pytest.raises(SeriesFileError, match="is outside the telemetry root"):
        within(root)(ref.format(secret=secret), 1)

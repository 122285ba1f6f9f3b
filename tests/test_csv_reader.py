"""The one CSV reader (``edgeseq_export.rows``): delimiters, BOM, header or none, columns, dates,
the missing-value policies, and bad files as one line naming the file and the line. The
expected numbers are written out by hand (the reference is the file's text itself)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from edgeseq_export.rows import DataError, read_rows, read_table
from edgeseq_runtime.csv_fields import split_line

EDGESEQ = [sys.executable, "-m", "edgeseq.cli"]
SALES = [[15136.0, 1.5], [16733.0, 2.5], [20016.0, 3.0]]


def _write(tmp_path, text, name="data.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize("delimiter", [",", ";", "\t"], ids=["comma", "semicolon", "tab"])
def test_delimiter_is_sniffed(tmp_path, delimiter):
    text = "".join(delimiter.join(row) + "\n" for row in
                   [["month", "sales", "price"], ["1980-01", "15136", "1.5"], ["1980-02", "16733", "2.5"],
                    ["1980-03", "20016", "3"]])
    table = read_table(_write(tmp_path, text))
    assert table.delimiter == delimiter and table.columns == ["sales", "price"]
    np.testing.assert_array_equal(table.values, SALES)
    assert table.labels == ["1980-01", "1980-02", "1980-03"] and table.label_name == "month"


def test_semicolon_file_with_decimal_points_and_a_bom(tmp_path):
    path = _write(tmp_path, "\ufeffmonth;sales\r\n1980-01;15136.5\r\n1980-02;16733\r\n", encoding="utf-8")
    table = read_table(path)
    assert table.header == ["month", "sales"] and table.columns == ["sales"]  # no '\ufeffmonth'
    np.testing.assert_array_equal(table.values[:, 0], [15136.5, 16733.0])


def test_header_is_detected_and_said_or_stated(tmp_path):
    bare = _write(tmp_path, "1,2\n3,4\n", "bare.csv")
    table = read_table(bare)
    assert table.header is None and table.columns == ["1", "2"] and "no header line" in table.describe()
    np.testing.assert_array_equal(read_table(bare, ["2"]).values[:, 0], [2, 4])  # a column by position
    named = _write(tmp_path, "a,b\n1,2\n3,4\n", "named.csv")
    assert "header 'a,b'" in read_table(named).describe()
    # a header of numbers (years, say) is only a header when the caller says so
    years = _write(tmp_path, "2001,2002\n1,2\n3,4\n", "years.csv")
    assert read_table(years).header is None and len(read_table(years).values) == 3
    stated = read_table(years, ["2002"], header=True)
    assert stated.header == ["2001", "2002"]
    np.testing.assert_array_equal(stated.values[:, 0], [2, 4])


def test_columns_are_read_in_the_order_named(tmp_path):
    path = _write(tmp_path, "t,a,b,c\nx,1,2,3\ny,4,5,6\n")
    np.testing.assert_array_equal(read_table(path, ["c", "a"]).values, [[3, 1], [6, 4]])
    np.testing.assert_array_equal(read_rows(path, 2, ["c", "a"]), [[3, 1], [6, 4]])


def test_dates_are_passed_through(tmp_path):
    path = _write(tmp_path, "time,demand\n2000-06-05T00:00,22262\n2000-06-05T00:30,21756\n")
    dates = read_table(path).dates()
    assert dates.dtype.kind == "M" and (dates[1] - dates[0]) == np.timedelta64(30, "m")
    assert read_table(_write(tmp_path, "k,v\nred,1\nblue,2\n", "k.csv")).dates() is None  # labels, not dates


def test_missing_values_error_by_default_naming_the_line(tmp_path):
    path = _write(tmp_path, "month,sales\n1980-01,10\n1980-02,\n1980-03,30\n1980-04,NA\n")
    with pytest.raises(DataError, match=r"data.csv: line 3, column 'sales': a missing value .*--missing"):
        read_table(path)


def test_a_blank_trailing_value_is_dropped_or_interpolated(tmp_path):
    path = _write(tmp_path, "month,sales,price\n1980-01,10,1\n1980-02,,2\n1980-03,30,3\n1980-04,40,\n")
    dropped = read_table(path, missing="drop")
    np.testing.assert_array_equal(dropped.values, [[10, 1], [30, 3]])
    assert list(dropped.lines) == [2, 4] and dropped.labels == ["1980-01", "1980-03"] and dropped.dropped == 2
    filled = read_table(path, missing="interpolate")
    np.testing.assert_array_equal(filled.values, [[10, 1], [20, 2], [30, 3], [40, 3]])  # the end: nearest
    assert filled.filled == 2 and "2 missing value(s) interpolated" in filled.describe()


@pytest.mark.parametrize("text,message", [
    ("month,sales\n1980-01,10\n1980-02,abc\n", r"line 3, column 'sales': 'abc' is not a finite number"),
    ("month,sales\n1980-01,10\n1980-02,inf\n", r"line 3, column 'sales': 'inf' is not a finite number"),
    ("", r"no rows"),
    ("month,sales\n", r"a header line and no rows"),
    ("month,label\n1980-01,x\n", r"no numeric column"),
    ('a,b\n1,"2\n', r"line \d+: unexpected end of data"),
], ids=["text", "infinite", "empty", "header_only", "no_numbers", "unclosed_quote"])
def test_bad_files_are_one_line_naming_the_file(tmp_path, text, message):
    with pytest.raises(DataError, match=message) as error:
        read_table(_write(tmp_path, text))
    assert str(error.value).startswith(str(tmp_path / "data.csv")) and "\n" not in str(error.value)


def test_missing_column_and_non_text_and_fifo(tmp_path):
    path = _write(tmp_path, "a,b\n1,2\n")
    with pytest.raises(DataError, match=r"no column 'c' \(columns: a, b\)"):
        read_table(path, ["c"])
    (tmp_path / "latin1.csv").write_bytes(b"a,b\n\xe9,1\n")
    with pytest.raises(DataError, match="latin1.csv: not a text CSV file"):
        read_table(tmp_path / "latin1.csv")
    os.mkfifo(tmp_path / "fifo.csv")  # no writer: opening it for reading would wait forever
    with pytest.raises(DataError, match="fifo.csv: a FIFO, not a regular file"):
        read_table(tmp_path / "fifo.csv")


def test_a_stdin_line_is_split_by_the_same_rules():
    assert split_line("\ufeff1.5;2;3\n") == ["1.5", "2", "3"]
    assert split_line("1.5\t2\n") == ["1.5", "2"]
    assert split_line("1.5, 2\n") == ["1.5", "2"]
    assert split_line("7\n") == ["7"]


def test_train_says_the_header_and_refuses_a_gap_in_one_line(tmp_path):
    path = _write(tmp_path, "month;sales\n" + "".join(f"m{i};{100 + i % 12}\n" for i in range(60)) + "m60;\n")
    result = subprocess.run([*EDGESEQ, "train", str(path), "-o", str(tmp_path / "m.pt")], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "data.csv: line 62, column 'sales': a missing value" in result.stderr
    assert not (tmp_path / "m.pt").exists()


def test_stream_reads_semicolon_and_tab_rows_as_a_file_would(tmp_path):
    """The same three rows, comma-, semicolon- and tab-separated (a BOM on the first), stream to
    the same outputs: those of edgeseq's runtime on the numbers themselves."""
    import edgeseq_runtime
    from support.onnx_builders import build_model

    model = build_model(tmp_path, "GRU", input_size=3, hidden_size=6, head="matmul", output_size=2)
    rows = np.random.default_rng(4).standard_normal((3, 3)).astype(np.float32)
    expected = edgeseq_runtime.load(model.path).run(rows)
    for delimiter in (",", ";", "\t"):
        text = "\ufeff" + "".join(delimiter.join(f"{v:.9g}" for v in row) + "\n" for row in rows)
        result = subprocess.run([*EDGESEQ, "stream", str(model.path)], input=text, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        got = np.array([[float(v) for v in line.split(",")] for line in result.stdout.splitlines()])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)

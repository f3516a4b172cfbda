"""The data-set adapters read public files as strictly as replay does (issue 12 item 9)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citybrain.adapters import (
    AdapterError,
    GridBuilder,
    _write_csv_gz,
    beijing_air,
    nyc_311,
    parse_times,
    read_table,
    write_synthetic_grid,
)
from playbooks.loader import load_grid
from streams.feeds import INCIDENT_COLUMNS, READING_COLUMNS, load_events

HEADER = b"station,year,PM2.5\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"Dongsi,2016,3\nCa\xf1ada,2016,4\n", ":3: byte 0xf1 at column 3 is not UTF-8"),
        (b'"Dongsi,2016,3\nGucheng,2016,4\n', ":2: a quoted field opens here"),
        (b"Dongsi,2016,3\nGucheng,2016\n", ":3: row has 2 fields, expected 3"),
        (b"Dongsi,2016,3\nGucheng,2016,lots\n", ":3: field \"PM2.5\" is 'lots', expected a number"),
        (b"Dongsi,2016,3\x00\n", ":2: byte 0x00 (NUL)"),
        # Trial 19: pandas reads these as numbers, and they went on as readings.
        (b"Dongsi,2016,3\nGucheng,2016,inf\n", ":3: field \"PM2.5\" is 'inf', expected a finite"),
        (b"Dongsi,2016,1e999\n", ":2: field \"PM2.5\" is '1e999', expected a finite number"),
        (b"Dongsi,2016,-Infinity\n", ":2: field \"PM2.5\" is '-Infinity', expected a finite"),
        (b"Dongsi,2016,3\nGucheng,2016,lots\nx,1,inf\n", ":3: field \"PM2.5\" is 'lots'"),
    ],
)
def test_bad_source_files_name_file_and_line(tmp_path: Path, body: bytes, message: str) -> None:
    path = tmp_path / "src.csv"
    path.write_bytes(HEADER + body)
    with pytest.raises(AdapterError) as info:
        read_table(path, lambda name: name in ("year", "PM2.5"))
    assert str(info.value).startswith(f"{path}{message}"), str(info.value)


def test_a_header_naming_a_column_twice_is_refused_naming_both(tmp_path: Path) -> None:
    # Before: pandas read the second PM2.5 as "PM2.5.1", and its values were dropped
    # without a word (the first column's were the readings).
    path = tmp_path / "src.csv"
    path.write_bytes(b"station,PM2.5,year,PM2.5\nDongsi,3,2016,300\n")
    with pytest.raises(AdapterError) as info:
        read_table(path, lambda name: name in ("year", "PM2.5"))
    assert str(info.value) == (
        f"{path}:1: the header gives column 'PM2.5' twice (columns 2 and 4): which is "
        "meant? Rename or drop one"
    )


def test_good_files_read_as_pandas_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "src.csv"
    path.write_bytes(b"\xef\xbb\xbf" + HEADER + b'Dongsi,2016,3\r\n"Gu, cheng",2016,\r\n')
    frame = read_table(path, lambda name: name in ("year", "PM2.5"))
    assert frame["station"].tolist() == ["Dongsi", "Gu, cheng"]
    assert frame["year"].tolist() == [2016, 2016]
    assert frame["PM2.5"].iloc[0] == 3.0 and frame["PM2.5"].isna().iloc[1]


@pytest.mark.parametrize("text", ["x\ry", "x\r\ny", "x\ny", 'x\ry,"z"', "x\u2028\x85y"])
def test_a_quoted_line_break_in_a_field_is_read_as_the_fields_text(
    tmp_path: Path, text: str
) -> None:
    """t169: read_table wrote the rows it read for pandas with csv's writer under LF
    line ends, which leaves a lone CR unquoted; pandas ended the row there, and a valid
    file was refused as '3 rows read, 2 expected'. Fails on the old code (the CR cases)."""
    path = tmp_path / "src.csv"
    quoted = '"' + text.replace('"', '""') + '"'
    path.write_text(f"station,year,note\nDongsi,2016,{quoted}\nGucheng,2016,z\n", newline="")
    frame = read_table(path, lambda name: name == "year")
    assert frame["note"].tolist() == [text, "z"]
    assert frame["station"].tolist() == ["Dongsi", "Gucheng"]


def test_a_slice_holding_a_report_text_with_a_cr_reads_back_as_written(tmp_path: Path) -> None:
    """t169: the committed slices are written by pandas' to_csv under LF line ends, which
    leaves a lone CR unquoted: a report whose text held one became two rows of the slice,
    both refused by replay. Fails on the old code."""
    frame = pd.DataFrame(
        {
            "timestamp": ["2024-05-27T03:10:10Z", "2024-05-27T03:11:10Z"],
            "report_id": ["r1", "r2"],
            "category": ["Noise", "Noise"],
            "text": ["loud\rmusic", "plain"],
            "source": ["app", "app"],
            "grid_cell": ["c1", "c1"],
        }
    )
    path = tmp_path / "slice.csv.gz"
    _write_csv_gz(frame, path)
    events = load_events([path])
    assert [e.text for e in events] == ["loud\rmusic", "plain"]
    # A slice without one is written as before, each text quoted only where it must be.
    _write_csv_gz(frame.iloc[1:], path)
    assert gzip.decompress(path.read_bytes()).decode().splitlines()[1] == (
        "2024-05-27T03:11:10Z,r2,Noise,plain,app,c1"
    )


def test_a_synthetic_grid_declares_a_kind_it_needs(tmp_path: Path) -> None:
    path = write_synthetic_grid(tmp_path / "g.yaml", ["q1"], "water_discharge", "m3/s", 2)
    grid = load_grid(path)
    assert grid.sensors["q1"].kind == "water_discharge"
    assert grid.kinds["water_discharge"].unit == "m3/s"
    assert GridBuilder().kinds == {}


def test_a_grid_whose_names_hold_yaml_line_breaks_reads_back_as_written(tmp_path: Path) -> None:
    """t169: the grid file was written by yaml.safe_dump(allow_unicode=True), which
    leaves a NEL raw in a single-quoted name; YAML reads it as a line break, folded to a
    space, so the grid read back named the district 'Tong zhou' (and its unit so).
    Fails on the old code."""
    grid = GridBuilder()
    grid.chain(
        [
            ("city", "city", "City"),
            ("district", "d1", "Tong\x85zhou"),
            ("street", "s1", "Dead\u2028Run"),
            ("community", "c1", "Mill\u2029Lane"),
        ]
    )
    grid.sensor("g1", "water_level", "ft", "c1")
    grid.write(tmp_path / "grid.yaml")
    read = load_grid(tmp_path / "grid.yaml")
    assert read.cells["d1"].name == "Tong\x85zhou"
    assert read.cells["s1"].name == "Dead\u2028Run"
    assert read.cells["c1"].name == "Mill\u2029Lane"
    # A unit is a name, which holds no line break (t186): the name's as a space.
    assert read.cells["d1"].unit == "Tong zhou district duty office"
    assert read.cells["s1"].unit == "Dead Run street duty office"


def test_missing_columns_and_bad_times_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "src.csv"
    path.write_bytes(b"when,value\n2019-05-01 00:00,1\n2019-05-01 00:05,2\n")
    with pytest.raises(AdapterError, match=r"src.csv:1: the header has no column 'datetimeUTC'"):
        read_table(path, required=("datetimeUTC",))
    path.write_bytes(b"when,value\n2019-05-01 00:00,1\n\n2019-05-41 00:05,2\n")
    frame = read_table(path, required=("when",))
    assert frame.index.tolist() == [2, 4]  # each row's line in the file
    with pytest.raises(AdapterError, match=r"src.csv:4: '2019-05-41 00:05' is not a date"):
        parse_times(path, frame["when"])
    parts = pd.DataFrame({"year": [2016, 2016], "month": [2, 13], "day": [1, 1], "hour": [0, 0]})
    parts.index = pd.Index([2, 3])
    with pytest.raises(AdapterError, match=r":3: \{'year': 2016, 'month': 13"):
        parse_times(path, parts)


@settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.lists(
            st.sampled_from(
                ['"', ",", "\n", "\r", "\r\n", "\x00", "1", "x", "2016", "nan", "é", "\ufeff", " "]
            ),
            max_size=40,
        ).map(lambda parts: "".join(parts).encode()),
    ),
    header=st.booleans(),
)
def test_fuzz_any_source_file_gives_a_frame_or_a_file_line_error(
    tmp_path: Path, body: bytes, header: bool
) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes((HEADER if header else b"") + body)
    try:
        frame = read_table(path, lambda name: name in ("year", "PM2.5"))
    except AdapterError as exc:
        assert re.match(rf"{re.escape(str(path))}:\d+: \S", str(exc)), str(exc)
    else:
        assert all(isinstance(line, int) and line >= 2 for line in frame.index)


DATASETS = Path(__file__).resolve().parents[3] / "datasets"
# Where the slices' cities lie (lat, lon bounds), so a swapped or sign-flipped position fails.
REGIONS = {
    "usgs_flood": ((38.5, 39.6), (-77.3, -76.4)),
    "beijing_air": ((39.4, 40.7), (115.4, 117.6)),
    "aarhus_traffic": ((56.0, 56.4), (9.9, 10.4)),
    "nyc311": ((40.4, 41.0), (-74.3, -73.6)),
}


@pytest.mark.parametrize("prefix", sorted(REGIONS))
def test_every_committed_slice_has_a_position_for_every_sensor_and_cell(prefix: str) -> None:
    """The report map and the Grafana Geomap place what has coordinates; the new-user trial
    found gauge 01650800 and the Beijing stations missing from both."""
    grid = load_grid(DATASETS / "grid.yaml")
    (path,) = DATASETS.glob(f"{prefix}_*.csv.gz")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    (lat_lo, lat_hi), (lon_lo, lon_hi) = REGIONS[prefix]
    placed = []
    if "sensor_id" in frame:
        for sensor_id in sorted(set(frame["sensor_id"])):
            sensor = grid.sensors[sensor_id]
            placed.append((sensor_id, sensor.lat, sensor.lon))
    for cell_id in sorted(set(frame["grid_cell"])):
        cell = grid.cells[cell_id]
        placed.append((cell_id, cell.lat, cell.lon))
    assert placed
    for name, lat, lon in placed:
        assert lat is not None and lon is not None, f"{name} has no position"
        assert lat_lo < lat < lat_hi and lon_lo < lon < lon_hi, (name, lat, lon)


def test_the_two_gauges_and_a_beijing_station_sit_where_their_sources_say() -> None:
    grid = load_grid(DATASETS / "grid.yaml")
    # NWIS site metadata (datasets/README.md): EPSG:4326, rounded to 6 decimals.
    gauge = grid.sensors["usgs-01650800-water_level"]
    assert (gauge.lat, gauge.lon) == (38.986222, -77.004861)
    assert (grid.cells["md-gauge-01589330"].lat, grid.cells["md-gauge-01589330"].lon) == (
        39.311222,
        -76.716639,
    )
    # Beijing MEMC station list (KDD Cup 2018): Dongsi 116.417 E, 39.929 N.
    dongsi = grid.sensors["bj-dongsi-pm25"]
    assert (dongsi.lat, dongsi.lon) == (39.929, 116.417)


def test_a_beijing_file_of_an_unmapped_station_names_it(tmp_path: Path) -> None:
    # A KeyError traceback before (the UCI set has 12 stations; 8 are mapped to districts).
    folder = tmp_path / "beijing_air_quality"
    folder.mkdir()
    (folder / "PRSA_Data_Dingling.csv.gz").write_bytes(
        gzip.compress(b"No,year,month,day,hour,PM2.5,PM10,station\n1,2016,2,1,0,10,20,Dingling\n")
    )
    with pytest.raises(AdapterError, match=r"PRSA_Data_Dingling.csv.gz:2: station 'Dingling' is"):
        beijing_air(tmp_path, GridBuilder())


NYC_HEADER = (
    b"unique_key,created_date,complaint_type,descriptor,community_board,borough,"
    b"incident_zip,open_data_channel_type,latitude,longitude\n"
)


@pytest.mark.parametrize(
    ("created", "message"),
    [
        # Socrata writes 311's created_date in New York's local time without a zone.
        (b"2024-03-10T02:30:00.000", "local time 2024-03-10 02:30:00 does not exist in America/"),
        (b"2024-11-03T01:30:00.000", "local time 2024-11-03 01:30:00 happened twice in America/"),
    ],
)
def test_a_311_request_at_a_time_the_clocks_skip_or_repeat_names_its_line(
    tmp_path: Path, created: bytes, message: str
) -> None:
    # t74: pandas' NonExistentTimeError ended `citybrain datasets build` as a bug (exit
    # 70), naming no file or line.
    folder = tmp_path / "nyc_311"
    folder.mkdir()
    row = b",Noise - Residential,Loud Music/Party,12 MANHATTAN,MANHATTAN,10033.0,PHONE,40.8,-73.9\n"
    (folder / "nyc311_2024-05-26.csv.gz").write_bytes(
        gzip.compress(NYC_HEADER + b"1,2024-05-26T23:00:00.000" + row + b"2," + created + row)
    )
    with pytest.raises(AdapterError, match=rf"nyc311_2024-05-26.csv.gz:3: {message}"):
        nyc_311(tmp_path, GridBuilder())
    # The hour after the gap and the hours around the repeated one are times as usual.
    (folder / "nyc311_2024-05-26.csv.gz").write_bytes(
        gzip.compress(
            NYC_HEADER
            + b"1,2024-03-10T03:00:00.000"
            + row
            + b"2,2024-11-03T00:59:59.000"
            + row
            + b"3,2024-11-03T02:00:00.000"
            + row
        )
    )
    frame = nyc_311(tmp_path, GridBuilder())
    assert frame["timestamp"].tolist() == [
        "2024-03-10T07:00:00Z",
        "2024-11-03T04:59:59Z",
        "2024-11-03T07:00:00Z",
    ]


def test_311_times_with_their_own_offsets_are_read_by_them(tmp_path: Path) -> None:
    # t74: an export whose created_date carries New York's summer and winter offsets
    # ended the build in pandas' "Mixed timezones detected" ValueError (exit 70).
    folder = tmp_path / "nyc_311"
    folder.mkdir()
    row = b",Noise - Residential,Loud Music/Party,12 MANHATTAN,MANHATTAN,10033.0,PHONE,40.8,-73.9\n"
    source = folder / "nyc311_2024-05-26.csv.gz"
    source.write_bytes(
        gzip.compress(
            NYC_HEADER
            + b"1,2024-05-26T23:00:00.000-04:00"
            + row
            + b"2,2024-12-26T23:00:00.000-05:00"
            + row
            + b"3,2024-12-27T04:30:00.000Z"
            + row
        )
    )
    frame = nyc_311(tmp_path, GridBuilder())
    assert frame["timestamp"].tolist() == [
        "2024-05-27T03:00:00Z",
        "2024-12-27T04:00:00Z",
        "2024-12-27T04:30:00Z",
    ]
    # With and without a zone in one column: which zone the others are in is unsaid.
    source.write_bytes(
        gzip.compress(
            NYC_HEADER
            + b"1,2024-05-26T23:00:00.000"
            + row
            + b"2,2024-05-26T23:05:00.000-04:00"
            + row
        )
    )
    with pytest.raises(
        AdapterError,
        match=r"nyc311_2024-05-26.csv.gz:3: '2024-05-26T23:05:00.000-04:00' has a zone, line 2's",
    ):
        nyc_311(tmp_path, GridBuilder())


def test_a_utc_column_takes_times_with_and_without_a_zone(tmp_path: Path) -> None:
    # USGS's datetimeUTC: read with utc=True, a time without a zone is in UTC.
    path = tmp_path / "src.csv"
    path.write_bytes(b"datetimeUTC,v\n2019-05-01T04:00:00Z,1\n2019-05-01T04:05:00,2\n")
    frame = read_table(path, required=("datetimeUTC",))
    parsed = parse_times(path, frame["datetimeUTC"], utc=True)
    assert [t.isoformat() for t in parsed] == [
        "2019-05-01T04:00:00+00:00",
        "2019-05-01T04:05:00+00:00",
    ]


def test_a_build_failing_part_way_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    # helper t85: new slices were left beside an old grid, unsaid.
    from citybrain.adapters import write_all

    (tmp_path / "a.csv").write_text("old a")
    (tmp_path / "grid.yaml").write_text("old grid")

    def fail(path: Path) -> None:
        raise OSError(28, "No space left on device", str(path))

    with pytest.raises(OSError, match="No space left"):
        write_all(
            tmp_path,
            {
                "a.csv": lambda p: p.write_text("new a"),
                "b.csv": lambda p: p.write_text("new b"),
                "grid.yaml": fail,
            },
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "grid.yaml"]
    assert (tmp_path / "a.csv").read_text() == "old a"

    write_all(
        tmp_path,
        {"a.csv": lambda p: p.write_text("new a"), "grid.yaml": lambda p: p.write_text("g")},
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "grid.yaml"]
    assert (tmp_path / "a.csv").read_text() == "new a"


def _small_grid() -> GridBuilder:
    grid = GridBuilder()
    _small_grid_into(grid)
    return grid


def test_a_build_refuses_to_drop_what_was_added_to_the_grid_by_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t200: a developer's new city, added to datasets/grid.yaml as docs/events.md shows,
    was replaced by `datasets build`'s grid without a word. The build now names what the
    new grid would drop and writes nothing; a grid it wrote itself is replaced as before."""
    from citybrain import adapters

    out = tmp_path / "out"
    out.mkdir()
    built = _small_grid()
    built.write(out / "grid.yaml")
    assert adapters.entries_not_rebuilt(out / "grid.yaml", built) == ""
    assert adapters.entries_not_rebuilt(tmp_path / "none.yaml", built) == ""
    hand = _small_grid()
    levels = [("city", "to", "T"), ("district", "to-e", "E"), ("street", "to-m", "M")]
    hand.sensor("w1", "water_level", "ft", hand.chain([*levels, ("community", "to-g", "G")]))
    hand.kind("road_ice", "mm", 0, 50)
    hand.write(out / "grid.yaml")
    assert adapters.entries_not_rebuilt(out / "grid.yaml", built) == (
        "1 kind ('road_ice') and 4 cells ('to', 'to-e', 'to-m', 'to-g') and 1 sensor ('w1')"
    )

    # The whole build: every source read, then refused before anything is written.
    def source(shared: Path, grid: GridBuilder) -> pd.DataFrame:
        _small_grid_into(grid)
        return pd.DataFrame(columns=list(dict.fromkeys([*READING_COLUMNS, *INCIDENT_COLUMNS])))

    for name in ("usgs_flood", "beijing_air", "aarhus_traffic", "nyc_311"):
        monkeypatch.setattr(adapters, name, source)
    monkeypatch.setattr(adapters, "incident_departments", lambda shared: pd.DataFrame())
    before = (out / "grid.yaml").read_text()
    with pytest.raises(AdapterError, match=r"grid.yaml holds 1 kind \('road_ice'\) and 4 cells"):
        adapters.build(tmp_path, out)
    assert (out / "grid.yaml").read_text() == before
    assert sorted(p.name for p in out.iterdir()) == ["grid.yaml"]
    built.write(out / "grid.yaml")
    adapters.build(tmp_path, out)  # a grid it wrote itself: replaced, as before
    assert "to-g" not in (out / "grid.yaml").read_text()
    assert (out / "usgs_flood_2019-05.csv.gz").is_file()


def _small_grid_into(grid: GridBuilder) -> None:
    cell = grid.chain(
        [("city", "x", "X"), ("district", "d", "D"), ("street", "s", "S"), ("community", "c", "C")]
    )
    grid.sensor("s1", "water_level", "ft", cell)

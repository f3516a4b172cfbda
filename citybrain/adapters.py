"""Adapters: turn real public data sets into canonical replay CSVs and one grid file.

Offline work with pandas. ``citybrain datasets build --shared DIR`` regenerates the small
attributed slices committed under ``datasets/`` (see datasets/README.md for sources and
licences); nothing here runs in the stream.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dashboards.yamltext import yaml_text
from playbooks.errors import name_fault
from playbooks.grid import DEFAULT_KINDS
from streams.csvfile import (
    BadRow,
    RowWriter,
    read_records,
    repeated_column,
    row_start,
    separator_hint,
)
from streams.errors import FeedError, show, shown_path
from streams.feeds import INCIDENT_COLUMNS, READING_COLUMNS


class AdapterError(FeedError):
    """A source file cannot be converted; the message names file, line and reason."""


def _names_once(path: Path, line: int, names: list[str]) -> None:
    """``AdapterError`` for a header giving a column name twice (``repeated_column``):
    pandas reads the second as ``name.1``, so a file with two ``PM2.5`` columns had its
    first read and its second dropped, without a word."""
    reason = repeated_column(names)
    if reason is not None:
        raise AdapterError(f"{shown_path(path)}:{line}: {reason}")


def read_table(
    path: Path,
    numeric: Callable[[str], bool] = lambda name: False,
    required: tuple[str, ...] = (),
    **options: Any,
) -> pd.DataFrame:
    """``pd.read_csv`` of a public data file, but any fault is an ``AdapterError`` naming
    file and line: bytes that are not UTF-8, stray quotes, wrong field counts (read first
    by streams/csvfile.py), a ``required`` column missing from the header, and a value that
    is not a number in a ``numeric`` column. The frame's index is each row's line in the
    file, so later checks (``parse_times``) can name it too."""
    width: list[int] = []

    def looks_like_row(text: str) -> bool:
        # Stray-quote recovery: a line as wide as the header is a row of its own, and so
        # is one that starts such a row with a quoted field spanning lines.
        return bool(width) and row_start(text, width[0]) is not None

    lines: list[int] = []
    texts: list[list[str]] = []  # each row's fields as written, for a message
    buffer = io.StringIO()
    writer = RowWriter(buffer)  # a field's lone CR quoted, as pandas must read it back
    try:
        for record in read_records(path, looks_like_row):
            if isinstance(record, BadRow):
                raise AdapterError(str(record))
            if not width:
                width.append(len(record.fields))
                _names_once(path, record.line, record.fields)
            elif len(record.fields) != width[0]:
                raise AdapterError(
                    f"{shown_path(path)}:{record.line}: row has {len(record.fields)} fields, "
                    f"expected {width[0]}"
                )
            lines.append(record.line)
            texts.append(record.fields)
            writer.writerow(record.fields)
    except AdapterError:
        raise
    except FeedError as exc:
        raise AdapterError(str(exc)) from None
    if not lines:
        raise AdapterError(f"{shown_path(path)}:1: the file is empty, expected a header row")
    buffer.seek(0)
    try:
        # Empty lines are gone already; a line of spaces is a row here, as in the reader.
        frame = pd.read_csv(buffer, skip_blank_lines=False, **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise AdapterError(f"{shown_path(path)}:{lines[0]}: {exc}") from None
    if len(frame) != len(lines) - 1:  # pandas and the reader disagree: never guess
        raise AdapterError(
            f"{shown_path(path)}:{lines[0]}: {len(frame)} rows read, {len(lines) - 1} expected"
        )
    frame.index = pd.Index(lines[1:], name="line")
    frame.attrs["path"] = str(path)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise AdapterError(
            f"{shown_path(path)}:{lines[0]}: the header has no column "
            f"{missing[0]!r}{separator_hint(texts[0])}"
        )
    for at, column in enumerate(frame.columns):
        if not numeric(str(column)):
            continue
        given = frame[column]
        numeric_dtype = pd.api.types.is_numeric_dtype(given)
        numbers = given if numeric_dtype else pd.to_numeric(given, errors="coerce")
        # inf, -Infinity and 1e999 read as numbers (pandas' and float()'s rule), and
        # went on as readings that replay and the worker refuse (trial 19).
        infinite = numbers.isin([math.inf, -math.inf])
        bad = (numbers.isna() & given.notna()) | infinite
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            text = texts[row + 1][at] if at < len(texts[row + 1]) else given.iloc[row]
            expected = "a finite number" if infinite.iloc[row] else "a number"
            raise AdapterError(
                f'{shown_path(path)}:{frame.index[row]}: field "{column}" is {show(text)}, '
                f"expected {expected}"
            )
        if not numeric_dtype:
            frame[column] = numbers
    return frame


# A time of day followed by a zone: Z, UTC, GMT or a UTC offset (``-04:00``, ``+0530``).
_ZONED = re.compile(
    r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[Zz]|UTC|GMT|[+-]\d{2}(?::?\d{2})?)\s*"
)


def parse_times(path: Path, values: pd.Series | pd.DataFrame, **options: Any) -> pd.Series:
    """``pd.to_datetime`` of a ``read_table`` column (or of year/month/day/hour columns),
    with a value that is not a time an ``AdapterError`` naming file and line. Times that
    all carry a zone are read as instants in UTC, each by its own offset (a New York
    export's summer -04:00 and winter -05:00: pandas refused the mix with a ValueError,
    exit 70, t74); a column mixing times with and without a zone is an ``AdapterError``
    naming the first that differs (in which zone the others are cannot be told)."""
    # (``utc=True``: the caller says a time without a zone is in UTC, USGS's datetimeUTC)
    if isinstance(values, pd.Series) and not pd.api.types.is_numeric_dtype(values):
        given = values.notna().to_numpy()
        zoned = np.array([bool(_ZONED.search(str(v))) for v in values], dtype=bool) & given
        plain = given & ~zoned
        if zoned.any() and plain.any() and not options.get("utc"):
            first = int(given.nonzero()[0][0])
            row = int((plain if zoned[first] else zoned).nonzero()[0][0])
            has = "has a zone" if zoned[row] else "has no zone"
            raise AdapterError(
                f"{shown_path(path)}:{values.index[row]}: {values.iloc[row]!r} {has}, line "
                f"{values.index[first]}'s {values.iloc[first]!r} "
                f"{'has one' if zoned[first] else 'none'}: in which zone the times without "
                "one are cannot be told"
            )
        if zoned.any() and plain.any() and "format" not in options:
            # (pandas takes one format from the first time: "…Z" then "…" was NaT)
            options = {**options, "format": "ISO8601"}
        if zoned.any():
            options = {**options, "utc": True}
    parsed = pd.to_datetime(values, errors="coerce", **options)
    given = values.notna() if isinstance(values, pd.Series) else values.notna().all(axis=1)
    bad = parsed.isna() & given
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        shown = values.iloc[row] if isinstance(values, pd.Series) else values.iloc[row].to_dict()
        raise AdapterError(
            f"{shown_path(path)}:{values.index[row]}: {shown!r} is not a date and time"
        )
    return parsed


def localize(path: Path, times: pd.Series, zone: str) -> pd.Series:
    """``parse_times``' naive local times (a ``read_table`` column: its index is each row's
    line) as times in ``zone`` (times that carry their zone already: converted to it). A
    local time the zone skips (the hour its clocks go forward) or gives twice (the hour
    they go back) is an ``AdapterError`` naming file, line and time: pandas' own error
    named neither, and ended the build as a bug (exit 70; a NYC 311 request created at
    2024-03-10 02:30, t74)."""
    if times.dt.tz is not None:  # the file gave each time its zone: no guess to make
        return times.dt.tz_convert(zone)
    try:
        return times.dt.tz_localize(zone)
    except ValueError:  # pytz's NonExistentTimeError and AmbiguousTimeError
        pass
    given = times.notna().to_numpy()
    # Each fault on its own: the other resolved, so only rows of this one are NaT.
    skipped = (
        times.dt.tz_localize(zone, nonexistent="NaT", ambiguous=np.zeros(len(times), dtype=bool))
        .isna()
        .to_numpy()
        & given
    )
    twice = (
        times.dt.tz_localize(zone, nonexistent="shift_forward", ambiguous="NaT").isna().to_numpy()
        & given
    )
    row = int((skipped | twice).nonzero()[0][0])
    when = times.iloc[row].strftime("%Y-%m-%d %H:%M:%S")
    why = (
        f"does not exist in {zone} (its clocks went forward an hour then)"
        if skipped[row]
        else f"happened twice in {zone} (its clocks went back an hour then): which one is "
        "meant cannot be told"
    )
    raise AdapterError(f"{shown_path(path)}:{times.index[row]}: local time {when} {why}")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")


def _iso(ts: pd.Series) -> pd.Series:
    return ts.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def unit_words(name: str) -> str:
    """A cell's display name as words of the unit named after it: a line or paragraph
    separator, NEL or other character a unit may not hold (``name_fault``; the source
    data's names may hold them, t169) as one space, so the grid it builds loads (t186:
    a unit is a name the loader refuses them in)."""
    return " ".join("".join(" " if name_fault(c) else c for c in name).split()) or "unnamed"


class GridBuilder:
    """Collects cells (deduplicated) and sensor registrations for the grid file."""

    def __init__(self) -> None:
        self.cells: dict[str, dict[str, Any]] = {}
        self.sensors: dict[str, dict[str, Any]] = {}
        self.kinds: dict[str, dict[str, Any]] = {}

    def kind(self, kind: str, unit: str, low: float, high: float) -> None:
        """Declare a sensor kind the built-in ones (playbooks/grid.py) lack."""
        self.kinds[kind] = {"id": kind, "unit": unit, "min": low, "max": high}

    def chain(self, levels: list[tuple[str, str, str]]) -> str:
        """``[(level, id, name), ...]`` from city down; returns the last cell id."""
        parent = None
        for level, cell_id, name in levels:
            known = self.cells.get(cell_id)
            if known is not None and known["level"] != level:
                raise ValueError(f"cell id {cell_id!r} used at levels {known['level']} and {level}")
            if known is None:
                entry = {
                    "id": cell_id,
                    "level": level,
                    "name": name,
                    "unit": f"{unit_words(name)} {level} duty office",
                }
                if parent is not None:
                    entry["parent"] = parent
                self.cells[cell_id] = entry
            parent = cell_id
        assert parent is not None
        return parent

    def sensor(
        self,
        sensor_id: str,
        kind: str,
        unit: str,
        cell: str,
        position: tuple[float, float] | None = None,
    ) -> None:
        """Register a sensor; ``position`` is (lat, lon) in WGS84 degrees, from its source."""
        entry: dict[str, Any] = {"id": sensor_id, "kind": kind, "unit": unit, "cell": cell}
        if position is not None:
            entry["lat"], entry["lon"] = (round(float(c), 6) for c in position)
        self.sensors[sensor_id] = entry

    def place(self, cell_id: str, lat: float, lon: float) -> None:
        """Give a cell a point on the map (WGS84 degrees, 6 decimals: about 0.1 m)."""
        self.cells[cell_id]["lat"] = round(float(lat), 6)
        self.cells[cell_id]["lon"] = round(float(lon), 6)

    def readings(
        self,
        sensor_id: str,
        kind: str,
        unit: str,
        cell: str,
        times: pd.Series,
        values: pd.Series,
        position: tuple[float, float] | None = None,
    ) -> pd.DataFrame:
        """Register the sensor and return its readings as canonical rows."""
        self.sensor(sensor_id, kind, unit, cell, position)
        return pd.DataFrame(
            {
                "timestamp": _iso(times),
                "sensor_id": sensor_id,
                "kind": kind,
                "value": values.astype(float),
                "unit": unit,
                "grid_cell": cell,
            }
        )

    def write(self, path: Path) -> None:
        doc: dict[str, Any] = {"version": 1}
        if self.kinds:
            doc["kinds"] = list(self.kinds.values())
        doc |= {
            "cells": list(self.cells.values()),
            "sensors": sorted(self.sensors.values(), key=lambda s: s["id"]),
        }
        header = (
            "# citybrain grid: city > district > street > community, units responsible,\n"
            "# and sensors registered to community cells. Generated by\n"
            "# `citybrain datasets build`; format in docs/events.md.\n"
        )
        # A name holding a NEL reads back as written (dashboards.yamltext).
        path.write_text(header + yaml_text(doc, sort_keys=False, allow_unicode=True))


USGS_SITES = {
    "01589330": ("Baltimore County", "Dead Run", "Dead Run at Franklintown"),
    "01650800": ("Montgomery County", "Sligo Creek", "Sligo Creek near Takoma Park"),
}
# Gauge positions from NWIS site metadata. 01589330: its site description ("LOCATION.--Lat
# 39°18'40.4", long 76°42'59.9", referenced to North American Datum of 1983"),
# waterdata.usgs.gov/nwis/dv/?site_no=01589330; NAD83 and WGS84 differ by about a metre
# here. 01650800: the NWIS site information saved with the very request our slice comes
# from (hydrofunctions 0.2.4 sdist, docs/notebooks/view-example.parquet, key-value metadata
# "siteLatLongSrs": {"srs": "EPSG:4326", "latitude": 38.9862222, "longitude":
# -77.0048611}); the same metadata gives 01589330 as 39.3112222, -76.71663889, agreeing
# with the description to the sixth decimal.
USGS_POSITIONS = {
    "01589330": (39 + 18 / 60 + 40.4 / 3600, -(76 + 42 / 60 + 59.9 / 3600)),
    "01650800": (38.9862222, -77.0048611),
}
USGS_PARAMS = {
    "00060": ("discharge", "ft3/s"),
    "00065": ("water_level", "ft"),
    "63680": ("turbidity", "FNU"),
}


def usgs_flood(shared: Path, grid: GridBuilder) -> pd.DataFrame:
    """USGS urban stream gauges, 2019-05-06 -> 05-14: the 05-11 Dead Run flash flood."""
    source = shared / "usgs_urban_streams" / "usgs_iv_2019-05.csv.gz"
    # Value columns are USGS:<site>:<parameter>:00000; their _qualifiers columns are text.
    raw = read_table(
        source, lambda name: name.startswith("USGS:") and name.endswith(":00000"), ("datetimeUTC",)
    )
    raw["ts"] = parse_times(source, raw["datetimeUTC"], utc=True)
    raw = raw[(raw["ts"] >= "2019-05-06") & (raw["ts"] < "2019-05-14")]
    frames = []
    for site, (county, stream, name) in USGS_SITES.items():
        cell = grid.chain(
            [
                ("city", "md-urban", "Maryland urban streams"),
                ("district", f"md-{_slug(county)}", county),
                ("street", f"md-{_slug(stream)}", f"{stream} watershed"),
                ("community", f"md-gauge-{site}", name),
            ]
        )
        for param, (kind, unit) in USGS_PARAMS.items():
            column = f"USGS:{site}:{param}:00000"
            if column not in raw:
                continue
            part = raw[["ts", column]].dropna()
            frames.append(
                grid.readings(
                    f"usgs-{site}-{kind}",
                    kind,
                    unit,
                    cell,
                    part["ts"],
                    part[column],
                    USGS_POSITIONS[site],
                )
            )
        grid.place(cell, *USGS_POSITIONS[site])
    return pd.concat(frames)


BEIJING_DISTRICTS = {
    "Aotizhongxin": "Chaoyang",
    "Changping": "Changping",
    "Dongsi": "Dongcheng",
    "Guanyuan": "Xicheng",
    "Gucheng": "Shijingshan",
    "Huairou": "Huairou",
    "Nongzhanguan": "Chaoyang",
    "Wanshouxigong": "Xicheng",
}


# The stations' positions (lat, lon; WGS84 degrees, 3 decimals, about 100 m) from the
# Beijing Municipal Environmental Monitoring Center's station list as published with the
# KDD Cup 2018 "Fresh Air" data (biendata.com/competition/kdd_2018/data/,
# Beijing_AirQuality_Stations_en.xlsx; read from its CSV copy in github.com/ceshine/
# kddcup2018 at ccc5b060a946e07d788fa673c55de632f3911448, data/Beijing_AirQuality_
# Stations.csv). The UCI files' 12 national-control sites are entries of that list; UCI's
# "Changping" is its pingchang_aq (昌平镇, Changping town).
BEIJING_POSITIONS = {
    "Aotizhongxin": (39.982, 116.397),
    "Changping": (40.217, 116.230),
    "Dingling": (40.292, 116.220),
    "Dongsi": (39.929, 116.417),
    "Guanyuan": (39.929, 116.339),
    "Gucheng": (39.914, 116.184),
    "Huairou": (40.328, 116.628),
    "Nongzhanguan": (39.937, 116.461),
    "Shunyi": (40.127, 116.655),
    "Tiantan": (39.886, 116.407),
    "Wanliu": (39.987, 116.287),
    "Wanshouxigong": (39.878, 116.352),
}
BEIJING_STAMP = ("year", "month", "day", "hour")


def beijing_air(shared: Path, grid: GridBuilder) -> pd.DataFrame:
    """Beijing PM2.5/PM10, 2016-01-28 -> 02-11: Spring Festival fireworks, 2016-02-08."""
    frames = []
    for path in sorted((shared / "beijing_air_quality").glob("PRSA_Data_*.csv.gz")):
        raw = read_table(
            path,
            lambda name: name in (*BEIJING_STAMP, "PM2.5", "PM10"),
            (*BEIJING_STAMP, "station", "PM2.5", "PM10"),
        )
        if raw.empty:
            raise AdapterError(f"{shown_path(path)}:2: no data rows")
        station = raw["station"].iloc[0]
        local = parse_times(path, raw[list(BEIJING_STAMP)])
        raw["ts"] = localize(path, local, "Asia/Shanghai")
        raw = raw[(raw["ts"] >= "2016-01-28") & (raw["ts"] < "2016-02-11")]
        if station not in BEIJING_DISTRICTS:  # a KeyError traceback before
            raise AdapterError(
                f"{shown_path(path)}:{raw.index[0] if len(raw) else 2}: station {station!r} is "
                "none of "
                f"{', '.join(sorted(BEIJING_DISTRICTS))}"
            )
        district = BEIJING_DISTRICTS[station]
        cell = grid.chain(
            [
                ("city", "beijing", "Beijing"),
                ("district", f"bj-district-{_slug(district)}", f"{district} District"),
                ("street", f"bj-street-{_slug(station)}", f"{station} subdistrict"),
                ("community", f"bj-site-{_slug(station)}", f"{station} monitoring site"),
            ]
        )
        if station not in BEIJING_POSITIONS:
            raise AdapterError(f"{shown_path(path)}: station {station!r} has no known position")
        position = BEIJING_POSITIONS[station]
        grid.place(cell, *position)
        for column, kind in (("PM2.5", "pm25"), ("PM10", "pm10")):
            part = raw[["ts", column]].dropna()
            frames.append(
                grid.readings(
                    f"bj-{_slug(station)}-{kind}",
                    kind,
                    "ug/m3",
                    cell,
                    part["ts"],
                    part[column],
                    position,
                )
            )
    return pd.concat(frames)


def aarhus_traffic(shared: Path, grid: GridBuilder, segments: int = 12) -> pd.DataFrame:
    """Aarhus road segments, 2014-08-11 -> 08-14: rush hours, feed gaps, speed glitches."""
    folder = shared / "aarhus_traffic"
    meta = read_table(
        folder / "traffic_segments.csv",
        lambda name: name in ("REPORT_ID", "POINT_1_POSTAL_CODE"),
        ("REPORT_ID", "POINT_1_POSTAL_CODE", "POINT_1_STREET", "REPORT_NAME"),
    ).sort_values("REPORT_ID")
    chosen = meta.head(segments)
    source = folder / "aarhus_traffic_2014-08_2014-09.csv.gz"
    raw = read_table(
        source,
        lambda name: name in ("REPORT_ID", "avgSpeed", "vehicleCount"),
        ("REPORT_ID", "TIMESTAMP", "avgSpeed", "vehicleCount"),
    )
    raw = raw[raw["REPORT_ID"].isin(chosen["REPORT_ID"])]
    raw["ts"] = localize(source, parse_times(source, raw["TIMESTAMP"]), "UTC")
    raw = raw[(raw["ts"] >= "2014-08-11") & (raw["ts"] < "2014-08-14")]
    frames = []
    for _, seg in chosen.iterrows():
        rid = int(seg["REPORT_ID"])
        cell = grid.chain(
            [
                ("city", "aarhus", "Aarhus"),
                (
                    "district",
                    f"aarhus-{seg['POINT_1_POSTAL_CODE']}",
                    f"Aarhus postal district {seg['POINT_1_POSTAL_CODE']}",
                ),
                ("street", f"aarhus-{_slug(seg['POINT_1_STREET'])}", str(seg["POINT_1_STREET"])),
                ("community", f"aarhus-seg-{rid}", f"Road segment {seg['REPORT_NAME']}"),
            ]
        )
        part = raw[raw["REPORT_ID"] == rid]
        # The segment's sensors count traffic between its two end points: put them midway.
        middle = (
            (float(seg["POINT_1_LAT"]) + float(seg["POINT_2_LAT"])) / 2,
            (float(seg["POINT_1_LNG"]) + float(seg["POINT_2_LNG"])) / 2,
        )
        grid.place(cell, *middle)
        for column, kind, unit in (
            ("avgSpeed", "traffic_speed", "km/h"),
            ("vehicleCount", "traffic_flow", "vehicles/5min"),
        ):
            frames.append(
                grid.readings(
                    f"aarhus-{rid}-{kind}", kind, unit, cell, part["ts"], part[column], middle
                )
            )
    return pd.concat(frames)


NYC_CHANNELS = {"PHONE": "hotline", "ONLINE": "app", "MOBILE": "app"}
NYC_COLUMNS = (
    "unique_key",
    "created_date",
    "complaint_type",
    "descriptor",
    "community_board",
    "borough",
    "incident_zip",
    "open_data_channel_type",
)


def nyc_311(shared: Path, grid: GridBuilder) -> pd.DataFrame:
    """NYC 311 requests, eve of Memorial Day 2024 (1,000 rows), as incident reports."""
    source = shared / "nyc_311" / "nyc311_2024-05-26.csv.gz"
    raw = read_table(source, required=NYC_COLUMNS, dtype=str)
    raw = raw.dropna(subset=["community_board", "borough", "incident_zip"])
    raw["ts"] = localize(source, parse_times(source, raw["created_date"]), "America/New_York")
    cells = []
    for _, row in raw.iterrows():
        zip_code = str(row["incident_zip"]).split(".")[0]
        cells.append(
            grid.chain(
                [
                    ("city", "nyc", "New York City"),
                    ("district", f"nyc-{_slug(row['borough'])}", str(row["borough"]).title()),
                    (
                        "street",
                        f"nyc-cb-{_slug(row['community_board'])}",
                        f"Community Board {row['community_board']}",
                    ),
                    (
                        "community",
                        f"nyc-cb-{_slug(row['community_board'])}-zip-{zip_code}",
                        f"ZIP {zip_code} in {row['community_board']}",
                    ),
                ]
            )
        )
    # Each ZIP cell's point: the mean position of its requests in the slice (311 records
    # carry WGS84 latitude/longitude). Some requests are not geocoded (8 of 998 here); a
    # cell with none but those takes the mean of the slice's requests in the same ZIP.
    positions = pd.DataFrame(
        {
            "cell": cells,
            "zip": raw["incident_zip"].str.split(".").str[0].to_numpy(),
            "lat": pd.to_numeric(raw["latitude"], errors="coerce").to_numpy(),
            "lon": pd.to_numeric(raw["longitude"], errors="coerce").to_numpy(),
        }
    )
    located = positions.dropna()
    for cell_id, where in located.groupby("cell"):
        grid.place(str(cell_id), where["lat"].mean(), where["lon"].mean())
    by_zip = located.groupby("zip")[["lat", "lon"]].mean()
    for cell_id, zip_code in positions[["cell", "zip"]].drop_duplicates().itertuples(index=False):
        if "lat" not in grid.cells[cell_id] and zip_code in by_zip.index:
            grid.place(str(cell_id), *by_zip.loc[zip_code])
    text = raw["complaint_type"].fillna("") + ": " + raw["descriptor"].fillna("")
    # 311 channels: phone calls are the hotline, web and app are the app; the rest
    # (UNKNOWN, OTHER) are entered by city staff, the closest we have to inspectors.
    source = raw["open_data_channel_type"].map(NYC_CHANNELS).fillna("inspector")
    return pd.DataFrame(
        {
            "timestamp": _iso(raw["ts"]),
            "report_id": "nyc311-" + raw["unique_key"],
            "category": raw["complaint_type"],
            "text": text,
            "source": source,
            "grid_cell": cells,
        }
    )


NYC_AGENCY_DEPARTMENTS = {
    "NYPD": "police",
    "HPD": "housing",
    "DSNY": "sanitation",
    "DOT": "transport",
    "TLC": "transport",
    "DEP": "environment",
    "DOHMH": "health",
    "DPR": "parks",
    "DOB": "buildings",
    "DHS": "social-services",
}


def incident_departments(shared: Path) -> pd.DataFrame:
    """Training texts for the department classifier: every NYC 311 snapshot (complaint
    type and descriptor, agency as department) and the SF fire calls (call type; medical
    calls to EMS, the rest to the fire department)."""
    frames = []
    for path in sorted((shared / "nyc_311").glob("nyc311_*.csv.gz")):
        raw = read_table(path, dtype=str)
        raw.columns = [c.lower().replace(" ", "_") for c in raw.columns]
        for column in ("complaint_type", "descriptor", "agency"):
            if column not in raw.columns:
                raise AdapterError(f"{shown_path(path)}:1: the header has no column {column!r}")
        text = raw["complaint_type"].fillna("") + ": " + raw["descriptor"].fillna("")
        department = raw["agency"].map(NYC_AGENCY_DEPARTMENTS).fillna("city-management")
        frames.append(
            pd.DataFrame(
                {
                    "text": text,
                    "department": department,
                    "source": path.name.removesuffix(".csv.gz"),
                }
            )
        )
    sf = read_table(
        shared / "sf_fire_calls" / "sf_fire_calls_sample.csv", required=("CallType",), dtype=str
    )
    medical = sf["CallType"].str.contains("Medical", case=False, na=False)
    frames.append(
        pd.DataFrame(
            {
                "text": sf["CallType"].fillna(""),
                "department": medical.map({True: "ems", False: "fire"}),
                "source": "sf_fire_calls",
            }
        )
    )
    return pd.concat(frames, ignore_index=True)


# What ``build`` reads under the shared folder: a file, or a pattern at least one file
# must match (datasets/README.md says where each comes from).
SOURCES = (
    "usgs_urban_streams/usgs_iv_2019-05.csv.gz",
    "beijing_air_quality/PRSA_Data_*.csv.gz",
    "aarhus_traffic/traffic_segments.csv",
    "aarhus_traffic/aarhus_traffic_2014-08_2014-09.csv.gz",
    "nyc_311/nyc311_2024-05-26.csv.gz",
    "sf_fire_calls/sf_fire_calls_sample.csv",
)


def missing_sources(shared: Path) -> list[str]:
    """The entries of ``SOURCES`` that ``shared`` lacks (no such file; a pattern that
    matches none), in ``SOURCES``' order. t158: a folder without Beijing's files was
    "unexpected ValueError: No objects to concatenate … a bug" (exit 70), one without
    the USGS file "…/usgs_iv_2019-05.csv.gz: cannot read: No such file or directory",
    after the other sources had been read, naming no option."""
    missing = []
    for source in SOURCES:
        found = list(shared.glob(source)) if "*" in source else [shared / source]
        if not any(path.is_file() for path in found):
            missing.append(source)
    return missing


def build(shared: Path, out: Path) -> dict[str, int]:
    """Write every slice, the grid and the department training set; returns rows per
    file. Every source is read before anything is written, and the files are written
    whole or not at all (``write_all``)."""
    grid = GridBuilder()
    counts: dict[str, int] = {}
    slices = {
        "usgs_flood_2019-05.csv.gz": (usgs_flood(shared, grid), READING_COLUMNS),
        "beijing_air_2016-02.csv.gz": (beijing_air(shared, grid), READING_COLUMNS),
        "aarhus_traffic_2014-08.csv.gz": (aarhus_traffic(shared, grid), READING_COLUMNS),
        "nyc311_2024-05-26.csv.gz": (nyc_311(shared, grid), INCIDENT_COLUMNS),
    }
    frames = {
        name: frame.sort_values(["timestamp", columns[1]], kind="stable")[columns]
        for name, (frame, columns) in slices.items()
    }
    # Read before any write: it was read after the slices and the grid were written, so
    # a bad file there left new slices beside an old training set (helper t85).
    frames["incident_departments.csv.gz"] = incident_departments(shared)
    writers: dict[str, Callable[[Path], None]] = {
        name: functools.partial(_write_csv_gz, frame) for name, frame in frames.items()
    }
    writers["grid.yaml"] = grid.write
    dropped = entries_not_rebuilt(out / "grid.yaml", grid)
    if dropped:
        # t200: a developer's new city, added to datasets/grid.yaml as docs/events.md
        # shows, was replaced by the built grid without a word.
        raise AdapterError(
            f"{shown_path(out / 'grid.yaml')} holds {dropped}, which the build does not "
            "write (added by hand?): the new grid.yaml would drop them. Keep them in a grid "
            "file of your own (a copy of this one, named by CITYBRAIN_GRID_FILE or demo "
            "--grid), then delete them from this one or move it aside; or give --out "
            "another folder (nothing was written)"
        )
    write_all(out, writers)
    counts.update({name: len(frame) for name, frame in frames.items()})
    return counts


def entries_not_rebuilt(path: Path, grid: GridBuilder) -> str:
    """The kinds, cells and sensors of the grid file at ``path`` that ``grid`` (the grid
    a build writes) lacks, said as ``2 cells ('to-city', 'to-etobicoke') and 1 sensor
    (…)``, or "" when it has every one, or when there is no such file or it cannot be read
    as a grid's YAML (nothing there a grid could use). Up to 5 ids each are named."""
    from playbooks.loader import load_grid_yaml

    try:
        doc = load_grid_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return ""
    if not isinstance(doc, dict):
        return ""
    parts = []
    for key, built, one in (
        ("kinds", grid.kinds, "kind"),
        ("cells", grid.cells, "cell"),
        ("sensors", grid.sensors, "sensor"),
    ):
        entries = doc.get(key)
        ids = [
            str(e["id"])
            for e in (entries if isinstance(entries, list) else [])
            if isinstance(e, dict) and "id" in e
        ]
        gone = list(dict.fromkeys(i for i in ids if i not in built and not _built_in(key, i)))
        if gone:
            named = ", ".join(repr(i) for i in gone[:5]) + (", …" if len(gone) > 5 else "")
            parts.append(f"{len(gone):,} {one}{'' if len(gone) == 1 else 's'} ({named})")
    return " and ".join(parts)


def _built_in(key: str, entry_id: str) -> bool:
    """Whether a kind of a grid file is one of the built-in kinds, which a grid may
    redeclare and a built grid need not (playbooks.grid.DEFAULT_KINDS)."""
    return key == "kinds" and entry_id in DEFAULT_KINDS


def _write_csv_gz(frame: pd.DataFrame, path: Path) -> None:
    # pandas writes with csv's writer, which leaves a text's lone CR unquoted under LF line
    # ends (streams.csvfile.RowWriter): a report text holding one was cut into two rows
    # of the slice. A frame with one is written with every text quoted (t169).
    texts = frame.select_dtypes(include=["object", "string"])
    held = any(texts[c].astype(str).str.contains("\r", regex=False).any() for c in texts)
    # mtime=0 keeps the gzip bytes identical between builds.
    frame.to_csv(
        path,
        index=False,
        lineterminator="\n",
        quoting=csv.QUOTE_NONNUMERIC if held else csv.QUOTE_MINIMAL,
        compression={"method": "gzip", "mtime": 0},
    )


def write_all(out: Path, writers: Mapping[str, Callable[[Path], None]]) -> None:
    """Each ``writers[name](path)`` into a new folder inside ``out``, then every file
    renamed into ``out`` once all are written: a failure part-way (a full disk, a
    permission) leaves ``out`` as it was (it left new slices beside an old grid, and
    said nothing of which were new: helper t85). Raises what a writer raises."""
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=out))
    try:
        for name, write in writers.items():
            write(staging / name)
        for name in writers:  # renames within one folder: they do not fail part-way
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_synthetic_grid(
    path: Path, sensors: list[str], kind: str, unit: str, communities: int
) -> Path:
    """A one-street grid with ``communities`` cells and ``sensors`` spread over them
    round-robin: for benchmarks and scale tests, where the shape of the grid is not the
    point. Sensor ``i`` sits in community ``c{i % communities}``."""
    grid = GridBuilder()
    for c in range(communities):
        grid.chain(
            [
                ("city", "city", "City"),
                ("district", "d1", "D1"),
                ("street", "s1", "S1"),
                ("community", f"c{c}", f"C{c}"),
            ]
        )
    known = DEFAULT_KINDS.get(kind)
    if known is None or known.unit != unit:
        grid.kind(kind, unit, -1e15, 1e15)
    for i, sensor in enumerate(sensors):
        grid.sensor(sensor, kind, unit, f"c{i % communities}")
    grid.write(path)
    return path

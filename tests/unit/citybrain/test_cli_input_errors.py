"""Every input error of every command is exit status 2 with one line naming the option,
field or value and what to do (the new-user trial of issue 15: `citybrain detect` said 1
for a missing file and for a bad header; `ingest mqtt` called a bad topic pattern a bug).

The commands run against a stopped stack (tests/unit/citybrain/test_cli_errors.py): an
input error must be found before any service is asked, so none of these ends in 3.
"""

from __future__ import annotations

import shlex
import socket
from pathlib import Path

import pytest

from citybrain.cli import EXIT_USAGE, main
from citybrain.commands import cli_command
from tests.unit.citybrain.test_cli_errors import run_in_process


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("inputs")
    (tmp / "bad-header.csv").write_text("time,val\n2020-01-01 00:00:00,1\n")
    (tmp / "bad-row.csv").write_text("timestamp,value\n2020-01-01 00:00:00,abc\n")
    (tmp / "dir").mkdir()
    (tmp / "dir" / "a.csv").write_text("timestamp,value\n2020-01-01 00:00:00,1\n")
    (tmp / "dir" / "b.csv").write_text("timestamp,value\n2020-01-01 00:00:00,abc\n")
    (tmp / "replay-bad-row.csv").write_text(
        "timestamp,sensor_id,kind,value,unit,grid_cell\n"
        "2019-05-11T00:00:00Z,usgs-01589330-00065,water_level,1.5,ft,community:usgs-c1\n"
        "2019-05-11T00:05:00Z,usgs-01589330-00065,water_level,abc,ft,community:usgs-c1\n"
    )
    (tmp / "replay-bad-header.csv").write_text("timestamp,sensor_id\nx,y\n")
    # A directory with a replay file beside a CSV of another kind (as datasets/ holds the
    # classifier's training file beside the slices).
    (tmp / "replays").mkdir()
    (tmp / "replays" / "good.csv").write_text(
        "timestamp,sensor_id,kind,value,unit,grid_cell\n"
        "2019-05-11T00:00:00Z,usgs-01589330-00065,water_level,1.5,ft,community:usgs-c1\n"
    )
    (tmp / "replays" / "other.csv").write_text("text,department,source\na,b,c\n")
    (tmp / "not-json.jsonl").write_text("time,val\n")
    (tmp / "latin1.jsonl").write_bytes(b'{"run_id": "r"}\n{"note": "caf\xe9"}\n')
    (tmp / "latin1.yaml").write_bytes(b"# units\nresponse_profile: caf\xe9.json\n")
    (tmp / "not-events.yaml").write_text("just: a mapping\n")
    env = {
        "CITYBRAIN_HOME": str(tmp / "home"),
        "CITYBRAIN_RUN_DIR": str(tmp / "run"),
        "CITYBRAIN_KAFKA_PORT": str(_closed_port()),
        "CITYBRAIN_PROMETHEUS_PORT": str(_closed_port()),
        "CITYBRAIN_WORKER_PORT": str(_closed_port()),
        "CITYBRAIN_MQTT_PORT": str(_closed_port()),
        "CITYBRAIN_INGEST_HTTP_PORT": str(_closed_port()),
    }
    return tmp, env


API = ["--token", "t"]
UNITS = str(Path(__file__).resolve().parents[3] / "datasets" / "service_times" / "units-nyc.yaml")
# (command line with T for the temp dir, what the one line must say)
CASES = [
    (
        ["detect", "--input", "T/missing.csv", "--output", "T/o.csv"],
        "--input 'T/missing.csv': no such file",
    ),
    (
        ["detect", "--input", "T/bad-header.csv", "--output", "T/o.csv"],
        "header is 'time,val', expected timestamp,value",
    ),
    (
        ["detect", "--input", "T/bad-row.csv", "--output", "T/o.csv"],
        "field \"value\" is 'abc', expected a number",
    ),
    (
        ["detect", "--input-dir", "T/missing", "--output-dir", "T/o"],
        "--input-dir 'T/missing': no such directory",
    ),
    (["detect", "--input-dir", "T/dir"], "detect: --input-dir needs --output-dir"),
    # A directory where a file is expected is said to be one, with what to give instead
    # (the new-user trial of issue 15: `detect --input DIR` said "no such file").
    (
        ["detect", "--input", "T/dir", "--output", "T/o.csv"],
        "--input 'T/dir' is a directory, expected a file: to score every CSV under it give "
        "--input-dir T/dir --output-dir DIR",
    ),
    (
        ["detect", "--input-dir", "T/bad-row.csv", "--output-dir", "T/o"],
        "--input-dir 'T/bad-row.csv' is a file, expected a directory: give --input FILE",
    ),
    (["replay", "T/dir"], "FILE 'T/dir' is a directory, expected a file: it holds no reading"),
    (
        ["replay", "T/replays"],
        "FILE 'T/replays' is a directory, expected a file: name the reading and incident CSVs "
        "in it: T/replays/good.csv",
    ),
    (
        ["report", "--prefix", "p", "--data", "T/dir", "--out", "T/r.html"],
        "--data 'T/dir' is a directory, expected a file: it holds no reading or incident CSV",
    ),
    (["demo", "--data", "T/dir"], "--data 'T/dir' is a directory, expected a file"),
    (
        ["campaign", "report", "--from", "2024-01-01", "--to", "2024-02-01", "--input", "T/dir"],
        "--input 'T/dir' is a directory, expected a file: name a file in it, e.g. T/dir/a.csv",
    ),
    (
        ["rehearse", "--incidents", "T/dir", "--units", UNITS],
        "--incidents 'T/dir' is a directory, expected a file",
    ),
    (
        ["bench", "nab", "--data", "T/missing"],
        "--data 'T/missing': no such directory (NAB's layout",
    ),
    # One reader for every file read whole as text (citybrain.errors.utf8_text).
    (
        [
            "campaign",
            "report",
            "--from",
            "2024-01-01",
            "--to",
            "2024-02-01",
            "--input",
            "T/latin1.jsonl",
        ],
        "T/latin1.jsonl:2: byte 0xe9 is not UTF-8 (a Latin-1 or Windows-1252 file? save the file "
        "as UTF-8)",
    ),
    (
        ["rehearse", "--incidents", "T/bad-row.csv", "--units", "T/latin1.yaml"],
        "--units T/latin1.yaml:2: byte 0xe9 is not UTF-8 (a Latin-1 or Windows-1252 file? save "
        "the file as UTF-8)",
    ),
    (["replay", "T/missing.csv"], "FILE 'T/missing.csv': no such file"),
    (["replay", "T/replay-bad-header.csv"], "header is 'timestamp,sensor_id'"),
    # detect's one-series file given to replay: pointed to detect, as detect points a
    # replay file to replay.
    (["replay", "T/dir/a.csv"], "a timestamp,value file is one series, the input of `"),
    (["replay", "T/dir/a.csv"], "citybrain detect --input "),
    (["replay", "T/replay-bad-row.csv"], "nothing was sent"),
    (
        ["replay", "T/replay-bad-row.csv", "--on-error", "skip", "--skip", "9"],
        "--skip is 9, but the files hold only 1 events",
    ),
    (
        ["report", "--prefix", "p", "--data", "T/missing.csv", "--out", "T/r.html"],
        "--data 'T/missing.csv': no such file",
    ),
    (
        [
            "campaign",
            "report",
            "--from",
            "2024-01-01",
            "--to",
            "2024-02-01",
            "--input",
            "T/missing.jsonl",
        ],
        "--input 'T/missing.jsonl': no such file",
    ),
    (
        [
            "campaign",
            "report",
            "--from",
            "2024-01-01",
            "--to",
            "2024-02-01",
            "--input",
            "T/not-json.jsonl",
        ],
        "T/not-json.jsonl:1: not a JSON record",
    ),
    (
        ["campaign", "report", "--from", "2024-01-01", "--to", "2024-02-01", "--out", "T/r.txt"],
        "--out is 'T/r.txt', expected a .html or .json file",
    ),
    (
        ["campaign", "report", "--from", "2024-02-01", "--to", "2024-01-01"],
        "--to 2024-01-01 is not after --from 2024-02-01",
    ),
    (
        ["campaign", "report", "--from", "someday", "--to", "2024-01-01"],
        "--from is 'someday', expected a date like 2024-05-26, or today, yesterday or tomorrow",
    ),
    (
        ["rehearse", "--incidents", "T/missing.csv", "--units", "T/missing.yaml"],
        "--units 'T/missing.yaml': no such file",
    ),
    (["demo", "--data", "T/missing.csv"], "--data 'T/missing.csv': no such file"),
    # Read before the stack starts or earlier demos' topics go (a newcomer's find: after).
    (["demo", "--data", "T/replay-bad-header.csv"], "T/replay-bad-header.csv:1: header is"),
    (["demo", "--data", "T/replay-bad-row.csv"], 'T/replay-bad-row.csv:3: field "value" is'),
    (["demo", "--expect", "T/missing.yaml"], "--expect 'T/missing.yaml': no such file"),
    (
        ["demo", "--expect", "T/not-events.yaml"],
        "--expect T/not-events.yaml: the file holds a mapping, expected a list of events",
    ),
    (["demo", "--grid", "T/missing.yaml"], "--grid 'T/missing.yaml': no such file"),
    (["playbooks", "check", "T/missing"], "the playbook directory 'T/missing': no such directory"),
    (
        ["playbooks", "check", "--routing", "T/missing.yaml"],
        "--routing 'T/missing.yaml': no such file",
    ),
    (["playbooks", "route-test", "kind"], "label 'kind' has no '=': expected name=value"),
    (
        [
            "dashboards",
            "push",
            "--url",
            "http://127.0.0.1:1",
            "--token",
            "t",
            "--generated",
            "T/missing",
        ],
        "--generated 'T/missing': no such directory",
    ),
    (
        ["datasets", "build", "--shared", "T/missing", "--out", "T/o"],
        "--shared 'T/missing': no such directory",
    ),
    (["ingest", "mqtt", "--topic", "bad{"], "topic pattern 'bad{': level 1 is 'bad{'"),
    (
        ["ingest", "http", "--sensor-id-template", "{id}"],
        "--sensor-id-template is '{id}': expected a template with {kind}",
    ),
    (["ingest", "http", "--max-pending", "5"], "--max-pending is 5, below --pack-size 1000"),
    (
        ["silences", "add", "--matcher", "kind=x", "--duration", "forever", "--reason", "r", *API],
        "--duration: duration is 'forever'",
    ),
    (
        ["silences", "add", "--matcher", "kind=x", "--duration", "0s", "--reason", "r", *API],
        "--duration is '0s', expected more than 0",
    ),
    (
        ["silences", "add", "--matcher", "kind=x", "--duration", "0", "--reason", "r", *API],
        "--duration is '0', expected more than 0",
    ),
    (
        ["silences", "add", "--matcher", "kind", "--duration", "1h", "--reason", "r", *API],
        "--matcher: matcher 'kind' is not",
    ),
    (
        ["silences", "add", "--matcher", "kind=x", "--duration", "1h", "--reason", " ", *API],
        "--reason is empty",
    ),
]


@pytest.mark.parametrize(
    ("argv", "says"), CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else None
)
def test_an_input_error_is_status_2_with_one_line_naming_it(
    argv: list[str], says: str, files: tuple[Path, dict[str, str]]
) -> None:
    tmp, env = files
    argv = [a.replace("T/", f"{tmp}/") for a in argv]
    proc = run_in_process(argv, env)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("citybrain: ")]
    assert len(lines) == 1, proc.stderr
    assert says.replace("T/", f"{tmp}/") in lines[0], lines[0]


@pytest.mark.parametrize(
    ("argv", "option", "listed"),
    [
        (["runs", "list", "--status", "bogus"], "--status", "waiting_ack"),
        (["runs", "resolve", "grp-x.1"], "--note", "required"),
        (["detect", "--detector", "bogus"], "--detector", "robust_zscore"),
        (["replay", "x.csv", "--on-error", "bogus"], "--on-error", "skip"),
        (["replay", "x.csv", "--speed", "0"], "--speed", "expected more than 0"),
        (["ingest", "mqtt", "--pack-size", "0"], "--pack-size", "expected 1..10000"),
        (["demo", "--ack-deadline", "-1"], "--ack-deadline", "expected more than 0"),
        # t171: it becomes the worker's CITYBRAIN_ACK_DEADLINE_SECONDS, which takes no less
        # than a second (t177): refused here, before the stack starts and the worker does not.
        (["demo", "--ack-deadline", "5e-324"], "--ack-deadline", "expected at least 1"),
        (["demo", "--ack-deadline", "0.5"], "--ack-deadline", "expected at least 1"),
    ],
)
def test_an_enumerated_or_bounded_option_is_checked_by_the_parser(
    argv: list[str], option: str, listed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    [last] = err.splitlines()  # argparse's reason, as one citybrain: line
    assert last.startswith("citybrain: ") and option in last and listed in last


def test_a_bad_row_in_a_directory_stops_it_before_any_file_is_scored(
    files: tuple[Path, dict[str, str]],
) -> None:
    tmp, env = files
    out = tmp / "scored"
    proc = run_in_process(
        ["detect", "--input-dir", str(tmp / "dir"), "--output-dir", str(out)], env
    )
    assert proc.returncode == EXIT_USAGE
    # Trial 5 item 16 ("1 of 5 files were scored"), then helper brief t47 fault 1: every
    # file is checked before any is scored, so a bad row leaves the directory as it was.
    assert "; none of the 2 files was scored: fix the file" in proc.stderr
    assert not (out / "a.csv").exists() and not (out / "b.csv").exists()


def test_a_header_fault_is_not_told_to_skip_rows(files: tuple[Path, dict[str, str]]) -> None:
    """--on-error skip passes bad rows, never a bad header: it is not suggested then."""
    tmp, env = files
    for argv in (
        ["detect", "--input", str(tmp / "bad-header.csv"), "--output", str(tmp / "o.csv")],
        ["replay", str(tmp / "replay-bad-header.csv")],
    ):
        proc = run_in_process(argv, env)
        assert proc.returncode == EXIT_USAGE and "--on-error" not in proc.stderr, proc.stderr
    proc = run_in_process(["replay", str(tmp / "replay-bad-row.csv")], env)
    assert "give --on-error skip" in proc.stderr


# Third new-user trial, item 13: `dashboards generate --out README.md` said
# "cannot use README.md/dashboards: Not a directory" without naming --out.
@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["dashboards", "generate", "--out"], "--out"),
        (["datasets", "build", "--shared", "{tmp}", "--out"], "--out"),
        (["detect", "--input-dir", "{tmp}/in", "--output-dir"], "--output-dir"),
    ],
)
@pytest.mark.parametrize("under", [False, True])
def test_an_output_directory_that_is_a_file_is_named_with_its_option(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    option: str,
    under: bool,
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("ts,sensor_id,kind,value\n")
    a_file = tmp_path / "README.md"
    a_file.write_text("not a directory\n")
    out = a_file / "dashboards" if under else a_file
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv] + [str(out)]
    assert main(args) == 2
    where = f"is under {str(a_file)!r}, a file" if under else "is a file"
    assert capsys.readouterr().err.strip() == (
        f"citybrain: {option} {str(out)!r} {where}: expected a directory (the command "
        "writes several files into it)"
    )
    assert a_file.read_text() == "not a directory\n"


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("CITYBRAIN_SCORE_THRESHOLD", "-1", "CITYBRAIN_SCORE_THRESHOLD is '-1': expected more"),
        ("CITYBRAIN_SCORE_THRESHOLD", "0", "CITYBRAIN_SCORE_THRESHOLD is '0': expected more"),
        ("CITYBRAIN_KAFKA_PORT", "99999", "CITYBRAIN_KAFKA_PORT is '99999': expected a port"),
        ("CITYBRAIN_GRID_FILE", "/nope.yaml", "CITYBRAIN_GRID_FILE is '/nope.yaml': no such"),
    ],
)
@pytest.mark.parametrize(
    "argv", [["detect", "--input", "x.csv", "--output", "y.csv"], ["stack", "status"]]
)
def test_a_bad_setting_stops_a_command_before_it_starts(
    argv: list[str], name: str, value: str, says: str
) -> None:
    # `detect` with threshold -1 counted the warm-up rows (scored 0) as flagged.
    proc = run_in_process(argv, {name: value})
    assert proc.returncode == EXIT_USAGE
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"citybrain: {says}")
    assert proc.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["ingest", "mqtt", "--topic", "bad{"],
        ["ingest", "http", "--sensor-id-template", "{id}"],
        ["ingest", "http", "--max-pending", "5"],
    ],
)
def test_the_ingest_says_where_it_writes_only_after_its_options_pass(
    argv: list[str], files: tuple[Path, dict[str, str]]
) -> None:
    # It printed "writing to Kafka at …" and then refused the option (trial 3, item 13).
    proc = run_in_process(argv, files[1])
    assert proc.returncode == EXIT_USAGE
    assert "writing to Kafka" not in proc.stdout


def test_a_retriable_group_coordinator_error_is_a_warning_others_stay_errors() -> None:
    # Trial 4: a worker's first start on a new broker logged one
    # "ERROR Group Coordinator Request failed: [Error 15] CoordinatorNotAvailableError".
    import logging

    from aiokafka.errors import CoordinatorNotAvailableError, GroupAuthorizationFailedError

    from citybrain.cli.stack import retriable_coordinator_error_is_a_warning

    def record(err: Exception) -> logging.LogRecord:
        return logging.LogRecord(
            "aiokafka.consumer.group_coordinator",
            logging.ERROR,
            __file__,
            1,
            "Group Coordinator Request failed: %s",
            (err,),
            None,
        )

    retriable = record(CoordinatorNotAvailableError())
    assert retriable_coordinator_error_is_a_warning(retriable)
    assert retriable.levelno == logging.WARNING
    assert "not available" in retriable.getMessage() and "retrying" in retriable.getMessage()
    fatal = record(GroupAuthorizationFailedError())
    assert retriable_coordinator_error_is_a_warning(fatal)
    assert fatal.levelno == logging.ERROR


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        # Fourth new-user trial, item 11: these printed the usage block and an error line.
        (
            ["ingest", "mqtt", "--qos", "2"],
            "citybrain: ingest mqtt: argument --qos: invalid choice: 2 (choose from 0, 1); "
            "see `{cli} ingest mqtt --help`",
        ),
        (
            ["ingest", "mqtt", "--inflight", "0"],
            "citybrain: ingest mqtt: argument --inflight: '0': expected 1..65535; "
            "see `{cli} ingest mqtt --help`",
        ),
        (
            ["replay", "--speed", "0", "x.csv"],
            "citybrain: replay: argument --speed: '0': expected more than 0; "
            "see `{cli} replay --help`",
        ),
    ],
)
def test_a_usage_error_is_one_citybrain_line(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", line.replace("{cli}", shlex.quote(cli_command())) + "\n")


@pytest.mark.parametrize(
    "argv",
    [
        ["detect", "--input", "{csv}", "--output", "{missing}/out.csv"],
        ["report", "--prefix", "p", "--data", "{csv}", "--out", "{missing}/r.html"],
        [
            "campaign",
            "report",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-02",
            "--out",
            "{missing}/c.json",
        ],
        [
            "campaign",
            "report",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-02",
            "--export",
            "{missing}/e.jsonl",
        ],
        ["rehearse", "--incidents", "{csv}", "--units", "{csv}", "--out", "{missing}/r.html"],
        ["demo", "--summary", "{missing}/s.json"],
        ["demo", "--report", "{missing}/r.html"],
    ],
)
def test_an_output_file_in_a_missing_folder_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """Trial 9: ``detect --output /nonexistent/dir/out.csv`` created the folders. Every
    command writing a file refuses a folder that does not exist, naming it, exit 2."""
    csv = tmp_path / "in.csv"
    csv.write_text("timestamp,value\n2026-11-01T00:00:00Z,1.0\n")
    missing = tmp_path / "no" / "such"
    line = [a.format(csv=csv, missing=missing) for a in argv]
    assert main(line) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"its folder {str(missing)!r} does not exist" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize(
    ("records", "said"),
    [
        (['{"schema": "step/1", "action": "run_created", "run_id": "a", "at": NaN}'], 2),
        (
            [
                '{"schema": "step/1", "action": "run_created", "run_id": "a", "at": 1.0}',
                "",
                '{"schema": "audit/1", "action": "transition", "run_id": "a", "at": 2, '
                '"data": [1]}',
            ],
            4,
        ),
    ],
)
def test_a_campaign_input_record_is_named_by_its_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], records: list[str], said: int
) -> None:
    """Trial 13: ``record 0 (None): field "at" is nan`` named neither the file nor the
    line (blank lines and a header comment make the index no line number)."""
    path = tmp_path / "records.jsonl"
    path.write_text("\n" + "\n".join(records) + "\n")
    argv = ["campaign", "report", "--from", "1970-01-01", "--to", "1970-01-02"]
    assert main([*argv, "--input", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"citybrain: {path}:{said}: field ") and len(err.splitlines()) == 1


def test_a_topic_message_that_is_no_json_record_is_left_out_and_said(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Trial 13: one foreign message in the steps topic (bytes that are not UTF-8) made
    ``campaign report --prefix`` exit 70, "a bug", every time."""
    from types import SimpleNamespace

    from citybrain.demo import topic_records

    # t150: a tombstone (a null value, any producer's) was a TypeError, exit 70 too.
    values = [b"not json\xff", b"[1, 2]", b'{"schema": "step/1", "run_id": "a"}', b"7", None]
    messages = [
        SimpleNamespace(topic="p.steps", partition=0, offset=i, value=v)
        for i, v in enumerate(values)
    ]
    records, places = topic_records(messages)
    assert (records, places) == ([{"schema": "step/1", "run_id": "a"}], ["p.steps/0/2"])
    assert capsys.readouterr().err == (
        "citybrain: warning: left out 4 messages that are not a JSON record: p.steps/0/0, "
        "p.steps/0/1, p.steps/0/3, p.steps/0/4\n"
    )


def test_a_topic_record_holding_a_lone_surrogate_is_left_out_and_said(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """t169: a record of the steps or audit topic holding JSON's "\\ud800" (no character;
    another tool's) reached campaign report's tables and HTML, which could not be written
    with it: exit 70, "a bug", and no report of those topics. Fails on the old code."""
    from types import SimpleNamespace

    from citybrain.demo import topic_records

    values = [
        b'{"schema": "step/1", "run_id": "a", "data": {"department": "po\\ud800lice"}}',
        b'{"schema": "step/1", "run_id": "b", "detail": "fine \\u2028 text"}',
    ]
    messages = [
        SimpleNamespace(topic="p.steps", partition=0, offset=i, value=v)
        for i, v in enumerate(values)
    ]
    records, places = topic_records(messages)
    assert (records, places) == (
        [{"schema": "step/1", "run_id": "b", "detail": "fine \u2028 text"}],
        ["p.steps/0/1"],
    )
    err = capsys.readouterr().err
    assert err == (
        "citybrain: warning: left out 1 message that is not a record the worker writes: "
        "p.steps/0/0 (field \"data.department\" is 'po\\ud800lice': a lone surrogate "
        "\\ud800 is not a character)\n"
    )
    err.encode("utf-8")  # said as escapes: stderr can write it


def test_a_topic_record_without_the_fields_its_readers_use_is_left_out_and_said(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Twenty-first session, a sibling of trial 13's: a JSON object on the alerts or steps
    topic that is no alert or step (a foreign producer's) made ``report`` and the demo's
    summary exit 70 with a KeyError (``doc["alert_id"]``, ``s["at"]``). What the worker
    writes passes the same checks."""
    import json
    from types import SimpleNamespace

    from citybrain.demo import topic_records
    from citybrain.report import alert_record, step_record
    from playbooks.engine import Command
    from streams.detection import AlertEvent

    sensor = AlertEvent(
        alert_id="al-1",
        status="resolved",
        sensor_id="s-1",
        kind="water_level",
        grid_cell="c-1",
        severity="major",
        score=0.8,
        value=1.5,
        started_at=1.8e9,
        ended_at=1.8e9 + 60,
        received_at=1.8e9,
    ).to_dict()
    burst = {**sensor, "alert_id": "al-2", "sensor_id": "", "kind": "incident_burst"}
    foreign = [{"alert_id": "al-3"}, {**sensor, "started_at": None}, {**sensor, "kind": 5}]
    messages = [
        SimpleNamespace(topic="p.alerts", partition=0, offset=i, value=json.dumps(d).encode())
        for i, d in enumerate([sensor, *foreign, burst])
    ]
    assert topic_records(messages, alert_record) == (
        [sensor, burst],
        ["p.alerts/0/0", "p.alerts/0/4"],
    )
    assert capsys.readouterr().err == (
        "citybrain: warning: left out 3 messages that are not a record the worker writes: "
        'p.alerts/0/1 (field "kind" is missing: expected a non-empty string), '
        'p.alerts/0/2 (field "started_at" is null: expected when the alert started), '
        'p.alerts/0/3 (field "kind" is 5: expected a non-empty string)\n'
    )
    created = {
        "schema": "step/1",
        "playbook": "flood",
        **Command(
            id="r-1:0", run_id="r-1", alert_id="al-1", action="run_created", at=1.8e9
        ).to_dict(),
    }
    escalated = {**created, "id": "r-1:1", "action": "escalate", "level": "street"}
    bad_steps = [
        {**created, "at": "soon"},
        {**created, "run_id": None},
        {**escalated, "level": None},
        {**created, "playbook": 3},
        {**created, "at": float("inf")},
    ]
    messages = [
        SimpleNamespace(topic="p.steps", partition=1, offset=i, value=json.dumps(d).encode())
        for i, d in enumerate([created, *bad_steps, escalated])
    ]
    records, places = topic_records(messages, step_record)
    assert (records, places) == ([created, escalated], ["p.steps/1/0", "p.steps/1/6"])
    err = capsys.readouterr().err
    assert err.startswith(
        "citybrain: warning: left out 5 messages that are not a record the worker"
    )
    for said in (
        "'soon': expected epoch seconds",
        '"run_id" is null',
        '"level" is null',
        '"playbook" is 3',
        '"at" is inf',
    ):
        assert said in err, (said, err)


def test_an_offset_out_of_range_is_one_warning_naming_where_reading_goes_on() -> None:
    """t173 (fails on the old code): aiokafka's INFO "Fetch offset … is out of range …,
    resetting offset" was the only word of a partition read from elsewhere (hidden at
    --loglevel warning). Now a WARNING naming the topic, partition, offset and the reset
    policy; the fetcher's other records below the worker's level stay out."""
    import logging

    from aiokafka.structs import TopicPartition

    from citybrain.cli.stack import OffsetOutOfRangeSaid

    said = OffsetOutOfRangeSaid(logging.WARNING)

    def record(msg: str, args: tuple[object, ...]) -> logging.LogRecord:
        name = OffsetOutOfRangeSaid.LOGGER
        return logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)

    out = record(OffsetOutOfRangeSaid.TEMPLATE, (500, TopicPartition("p.readings", 1)))
    assert said.filter(out) and out.levelno == logging.WARNING
    assert out.getMessage().startswith(
        "citybrain: topic p.readings partition 1: offset 500 is not in the partition"
    )
    assert "reading on from the partition's log start" in out.getMessage()
    assert not said.filter(record("Adding fetch request for partition %s", (1,)))
    fetcher = logging.getLogger(OffsetOutOfRangeSaid.LOGGER)
    before = fetcher.level
    try:
        OffsetOutOfRangeSaid.install(logging.WARNING)
        OffsetOutOfRangeSaid.install(logging.WARNING)  # one filter, not two
        assert fetcher.isEnabledFor(logging.INFO)
        assert sum(isinstance(f, OffsetOutOfRangeSaid) for f in fetcher.filters) == 1
    finally:
        for f in [f for f in fetcher.filters if isinstance(f, OffsetOutOfRangeSaid)]:
            fetcher.removeFilter(f)
        fetcher.setLevel(before)

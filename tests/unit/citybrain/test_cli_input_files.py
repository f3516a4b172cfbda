"""Every file a command reads is said the same way when it is missing, unreadable, a
directory or no text file of its kind (helper brief t37, fault 2: ``citybrain replay
nofile.csv`` said "nofile.csv: cannot read: No such file or directory" where ``demo
--data`` and ``detect`` said "--data 'nofile.csv': no such file"; a symbolic link loop
was "a symbolic link … which does not exist", and in ``report`` a bug, exit 70).

The parser is walked: every option or argument that names a file or directory the
command reads must be in ``INPUTS`` below, so a new one is covered as it is added."""

from __future__ import annotations

import argparse
import errno
import os
import zipfile
from pathlib import Path

import pytest

from citybrain.cli import EXIT_USAGE
from tests.unit.citybrain.test_cli_errors import Outcome, run_in_process
from tests.unit.citybrain.test_cli_help import ALL
from tests.unit.citybrain.test_cli_input_errors import _closed_port

REPO = Path(__file__).resolve().parents[3]
UNITS = str(REPO / "datasets" / "service_times" / "units-nyc.yaml")
INCIDENTS = str(REPO / "datasets" / "nyc311_2024-05-26.csv.gz")
# Options naming what a command writes (check_output's domain, tests elsewhere).
OUTPUTS = {"out", "output", "output_dir", "summary", "report", "export"}
CAMPAIGN = ["campaign", "report", "--from", "2024-01-01", "--to", "2024-01-02"]
REHEARSE = ["rehearse", "--incidents", INCIDENTS, "--units", UNITS]

# (command, dest) -> (argv with X for the path, the name the message gives, what it
# holds: a file's kind, or DIR). T/ is the test's own directory.
INPUTS: dict[tuple[tuple[str, ...], str], tuple[list[str], str, str]] = {
    (("replay",), "files"): (["replay", "X"], "FILE", "CSV"),
    (("demo",), "data"): (["demo", "--data", "X"], "--data", "CSV"),
    (("demo",), "grid"): (["demo", "--data", "T/good.csv", "--grid", "X"], "--grid", "YAML"),
    (("demo",), "expect"): (
        ["demo", "--data", "T/good.csv", "--expect", "X"],
        "--expect",
        "YAML",
    ),
    (("report",), "data"): (
        ["report", "--prefix", "p", "--data", "X", "--out", "T/r.html"],
        "--data",
        "CSV",
    ),
    (("campaign", "report"), "input"): ([*CAMPAIGN, "--input", "X"], "--input", "JSON lines"),
    (("campaign", "report"), "grid"): ([*CAMPAIGN, "--grid", "X"], "--grid", "YAML"),
    (("rehearse",), "incidents"): (
        ["rehearse", "--incidents", "X", "--units", UNITS],
        "--incidents",
        "CSV",
    ),
    (("rehearse",), "units"): (
        ["rehearse", "--incidents", INCIDENTS, "--units", "X"],
        "--units",
        "YAML",
    ),
    (("rehearse",), "playbook"): ([*REHEARSE, "--playbook", "X"], "--playbook", "YAML"),
    (("rehearse",), "grid"): ([*REHEARSE, "--grid", "X"], "--grid", "YAML"),
    (("detect",), "input"): (["detect", "--input", "X", "--output", "T/o.csv"], "--input", "CSV"),
    (("detect",), "input_dir"): (
        ["detect", "--input-dir", "X", "--output-dir", "T/scores"],
        "--input-dir",
        "DIR",
    ),
    (("bench", "nab"), "data"): (["bench", "nab", "--data", "X"], "--data", "DIR"),
    (("bench", "nab"), "labels"): (
        ["bench", "nab", "--data", "T/nab", "--labels", "X"],
        "--labels",
        "JSON",
    ),
    (("playbooks", "check"), "dir"): (["playbooks", "check", "X"], "the playbook directory", "DIR"),
    (("playbooks", "check"), "routing"): (
        ["playbooks", "check", "--routing", "X"],
        "--routing",
        "YAML",
    ),
    (("playbooks", "check"), "grid"): (["playbooks", "check", "--grid", "X"], "--grid", "YAML"),
    (("playbooks", "route-test"), "dir"): (
        ["playbooks", "route-test", "kind=pm25", "--dir", "X"],
        "--dir",
        "DIR",
    ),
    (("playbooks", "route-test"), "routing"): (
        ["playbooks", "route-test", "kind=pm25", "--routing", "X"],
        "--routing",
        "YAML",
    ),
    (("playbooks", "route-test"), "grid"): (
        ["playbooks", "route-test", "kind=pm25", "--grid", "X"],
        "--grid",
        "YAML",
    ),
    (("dashboards", "push"), "generated"): (
        ["dashboards", "push", "--url", "http://127.0.0.1:9", "--token", "t", "--generated", "X"],
        "--generated",
        "DIR",
    ),
    (("datasets", "build"), "shared"): (
        ["datasets", "build", "--shared", "X", "--out", "T/slices"],
        "--shared",
        "DIR",
    ),
}


def _reads_a_path(action: argparse.Action) -> bool:
    return action.metavar in ("FILE", "DIR") or action.dest in ("dir", "files")


def test_every_file_a_command_reads_is_covered() -> None:
    walked = {
        (path, action.dest)
        for path, parser in ALL
        for action in parser._actions
        if _reads_a_path(action) and action.dest not in OUTPUTS
    }
    assert walked == set(INPUTS)


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("input-files")
    (tmp / "good.csv").write_text(
        "timestamp,sensor_id,kind,value,unit,grid_cell\n"
        "2019-05-11T00:00:00Z,usgs-01589330-00065,water_level,1.5,ft,community:usgs-c1\n"
    )
    (tmp / "nab" / "data" / "water").mkdir(parents=True)
    (tmp / "a-dir").mkdir()
    (tmp / "a-file").write_text("x\n")
    os.symlink("loop", tmp / "loop")
    (tmp / "locked").write_text("timestamp,value\n")
    (tmp / "locked").chmod(0)
    with zipfile.ZipFile(tmp / "book.xlsx", "w") as book:
        book.writestr("xl/workbook.xml", "<workbook/>")
    (tmp / "plain.csv.gz").write_text("timestamp,value\n")
    (tmp / "nul.txt").write_bytes(b"name: x\n\x00\x01\x02")
    env = {
        "CITYBRAIN_HOME": str(tmp / "home"),
        "CITYBRAIN_RUN_DIR": str(tmp / "run"),
        **{
            f"CITYBRAIN_{name}_PORT": str(_closed_port())
            for name in ("KAFKA", "PROMETHEUS", "WORKER", "MQTT", "INGEST_HTTP")
        },
    }
    return tmp, env


def _cases() -> list[tuple[tuple[tuple[str, ...], str], str, str]]:
    """(INPUTS key, the file given, what the one line says after the name and path)."""
    loop = f": cannot read: {os.strerror(errno.ELOOP)}"
    cases = []
    for key, (_, _, kind) in INPUTS.items():
        if kind == "DIR":
            cases += [
                (key, "missing", ": no such directory"),
                (key, "a-file", " is a file, expected a directory"),
                (key, "loop", loop),
            ]
            continue
        cases += [
            (key, "missing", ": no such file"),
            (key, "a-dir", " is a directory, expected a file: "),
            (key, "loop", loop),
            (key, "book.xlsx", f" is not a {kind} file: a ZIP archive (an Excel .xlsx"),
            (key, "nul.txt", f" is not a {kind} file: it holds binary data (byte 0x00 at "),
        ]
        if os.geteuid() != 0:  # root reads any file, whatever its mode
            cases.append((key, "locked", f": cannot read: {os.strerror(errno.EACCES)}"))
        if kind == "CSV":
            cases.append(
                (key, "plain.csv.gz", " is not a CSV file: its name ends in .gz but it is not")
            )
    return cases


CASES = _cases()


@pytest.mark.parametrize(
    ("key", "given", "says"),
    CASES,
    ids=[f"{' '.join(k[0])} {k[1]} {g}" for k, g, _ in CASES],
)
def test_a_file_that_cannot_be_read_is_said_one_way(
    key: tuple[tuple[str, ...], str],
    given: str,
    says: str,
    place: tuple[Path, dict[str, str]],
) -> None:
    tmp, env = place
    template, name, _ = INPUTS[key]
    path = str(tmp / given)
    argv = [path if a == "X" else a.replace("T/", f"{tmp}/") for a in template]
    proc = run_in_process(argv, env)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines and lines[-1].startswith(f"citybrain: {name} {path!r}{says}"), proc.stderr
    assert sum(line.startswith("citybrain: ") for line in lines) == 1, proc.stderr


# Every option naming what a command writes, walked as INPUTS is (helper brief t47,
# fault 2: `report --out /tmp/d` said "cannot use /tmp/d: Is a directory" after the work,
# not naming --out; `report --out r.pdf` wrote HTML into it while `campaign report --out
# x.txt` was refused): (command, dest) -> (argv with X for the path, the option, the
# suffixes its file may have, or DIR). Each is checked before any work.
OUTPUT_OPTIONS: dict[tuple[tuple[str, ...], str], tuple[list[str], str, str]] = {
    (("demo",), "summary"): (
        ["demo", "--data", "T/good.csv", "--summary", "X"],
        "--summary",
        ".json",
    ),
    (("demo",), "report"): (["demo", "--data", "T/good.csv", "--report", "X"], "--report", ".html"),
    (("report",), "out"): (
        ["report", "--prefix", "p", "--data", "T/good.csv", "--out", "X"],
        "--out",
        ".html",
    ),
    (("campaign", "report"), "out"): ([*CAMPAIGN, "--out", "X"], "--out", ".html or .json"),
    (("campaign", "report"), "export"): ([*CAMPAIGN, "--export", "X"], "--export", ".jsonl"),
    (("rehearse",), "out"): ([*REHEARSE, "--out", "X"], "--out", ".html or .json"),
    (("detect",), "output"): (
        ["detect", "--input", "T/series.csv", "--output", "X"],
        "--output",
        ".csv",
    ),
    (("detect",), "output_dir"): (
        ["detect", "--input-dir", "T/nab", "--output-dir", "X"],
        "--output-dir",
        "DIR",
    ),
    (("dashboards", "generate"), "out"): (["dashboards", "generate", "--out", "X"], "--out", "DIR"),
    (("datasets", "build"), "out"): (
        ["datasets", "build", "--shared", "T/nab", "--out", "X"],
        "--out",
        "DIR",
    ),
}


def test_every_file_a_command_writes_is_covered() -> None:
    walked = {
        (path, action.dest)
        for path, parser in ALL
        for action in parser._actions
        if _reads_a_path(action) and action.dest in OUTPUTS
    }
    assert walked == set(OUTPUT_OPTIONS)


def _output_cases() -> list[tuple[tuple[tuple[str, ...], str], str, str]]:
    """(OUTPUT_OPTIONS key, the path given, the start of the one line after citybrain:)."""
    cases = []
    for key, (_, name, suffixes) in OUTPUT_OPTIONS.items():
        # t111: a folder no file can be created in (read-only; /proc, for root too) was
        # found after the work, naming a partial file the user never gave.
        first = "" if suffixes == "DIR" else suffixes.split()[0]
        cases.append(
            (
                key,
                f"/proc/out{first}",
                f"{name} /proc/out{first}: its folder '/proc' cannot be written (",
            )
        )
        if suffixes == "DIR":
            cases.append((key, "a-file", f"{name} 'T/a-file' is a file: expected a directory"))
            continue
        first = suffixes.split()[0]
        cases += [
            (key, "a-dir", f"{name} 'T/a-dir' is a directory, expected a file: "),
            (key, "out.pdf", f"{name} is 'T/out.pdf', expected a {suffixes} file"),
            (key, f"missing/out{first}", f"{name} T/missing/out{first}: its folder "),
        ]
    return cases


OUTPUT_CASES = _output_cases()


@pytest.mark.parametrize(
    ("key", "given", "says"),
    OUTPUT_CASES,
    ids=[f"{' '.join(k[0])} {k[1]} {g}" for k, g, _ in OUTPUT_CASES],
)
def test_a_file_that_cannot_be_written_is_said_one_way_before_any_work(
    key: tuple[tuple[str, ...], str],
    given: str,
    says: str,
    place: tuple[Path, dict[str, str]],
) -> None:
    tmp, env = place
    (tmp / "series.csv").write_text("timestamp,value\n2020-01-01,1\n")
    template, _, _ = OUTPUT_OPTIONS[key]
    argv = [(given if given.startswith("/") else f"T/{given}") if a == "X" else a for a in template]
    argv = [a.replace("T/", f"{tmp}/") for a in argv]
    proc = run_in_process(argv, env)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines and lines[-1].startswith(f"citybrain: {says.replace('T/', f'{tmp}/')}"), (
        proc.stderr
    )
    assert sum(line.startswith("citybrain: ") for line in lines) == 1, proc.stderr
    assert not (tmp / "out.pdf").exists() and not (tmp / "a-dir" / "out").exists()


def test_an_output_s_ending_is_read_in_any_case(tmp_path: Path) -> None:
    # t48: `report --out X.HTML` was "expected a .html file".
    from citybrain.cli import CliError
    from citybrain.cli.base import check_output

    for name in ("X.HTML", "x.Html", "x.html"):
        check_output("--out", str(tmp_path / name), suffixes=(".html",))
    with pytest.raises(CliError, match=r"expected a \.html file"):
        check_output("--out", str(tmp_path / "x.htm"), suffixes=(".html",))


def typed_in(
    place: tuple[Path, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    key: tuple[tuple[str, ...], str],
    given: str,
) -> tuple[Outcome, str]:
    """Input option ``key`` given ``given`` (absent) from the temporary directory: the
    finished run, refused as usage, and the words its message uses for "absent"."""
    tmp, env = place
    template, _, kind = INPUTS[key]
    monkeypatch.chdir(tmp)
    argv = [given if a == "X" else a.replace("T/", f"{tmp}/") for a in template]
    proc = run_in_process(argv, env)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    return proc, "no such directory" if kind == "DIR" else "no such file"


@pytest.mark.parametrize("key", list(INPUTS), ids=[" ".join(k[0]) + f" {k[1]}" for k in INPUTS])
def test_a_relative_path_of_the_checkout_typed_elsewhere_names_the_checkout_s(
    key: tuple[tuple[str, ...], str],
    place: tuple[Path, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """t60's walk: ``replay datasets/usgs_flood_2019-05.csv.gz`` typed from another
    directory, as the README writes it, said only "no such file"; now it says where it
    looked and the checkout's file, absolute, to type instead."""
    tmp, _ = place
    _, name, kind = INPUTS[key]
    given = "datasets" if kind == "DIR" else "datasets/grid.yaml"
    proc, missing = typed_in(place, monkeypatch, key, given)
    assert proc.stderr.splitlines()[-1].startswith(
        f"citybrain: {name} {given!r}: {missing} in {tmp} "
        f"(did you mean {str(REPO / given)!r}, the checkout's?)"
    ), proc.stderr


def test_a_relative_path_missing_in_the_checkout_too_is_said_as_before(
    place: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp, env = place
    monkeypatch.chdir(tmp)
    # No "did you mean" of a file that is not there either; since t116 the checkout's own
    # feeds are named, as for any missing input of a role the checkout ships.
    shipped = f" (the checkout's: {str(REPO / 'datasets/aarhus_traffic_2014-08.csv.gz')!r}, "
    proc = run_in_process(["replay", "datasets/nothing-here.csv"], env)
    said = "citybrain: FILE 'datasets/nothing-here.csv': no such file"
    assert proc.stderr.startswith(said + shipped), proc.stderr
    assert "did you mean" not in proc.stderr
    monkeypatch.chdir(REPO)
    proc = run_in_process(["replay", "datasets/nothing-here.csv"], env)
    assert proc.stderr.startswith(said + shipped), proc.stderr
    assert "did you mean" not in proc.stderr


@pytest.mark.parametrize("key", list(INPUTS), ids=[" ".join(k[0]) + f" {k[1]}" for k in INPUTS])
def test_a_placeholder_typed_as_printed_is_named_as_one(
    key: tuple[tuple[str, ...], str],
    place: tuple[Path, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """t68's walk: the demo's closing line ``citybrain replay FILE`` typed as printed
    said only "FILE 'FILE': no such file", as did the README's ``--data …``."""
    _, name, kind = INPUTS[key]
    given, what = ("D", "a directory") if kind == "DIR" else ("FILE", "a file")
    proc, missing = typed_in(place, monkeypatch, key, given)
    assert proc.stderr.splitlines()[-1].startswith(
        f"citybrain: {name} {given!r}: {missing}: {given!r} is the placeholder the "
        f"examples print: give {what}'s path"
    ), proc.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["playbooks", "check", "playbooks"],
        ["playbooks", "route-test", "--dir", "playbooks", "kind=pm25"],
        ["dashboards", "push", "--url", "http://g", "--token", "x", "--generated", "dashboards"],
    ],
)
def test_the_checkout_s_code_is_never_the_directory_suggested(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """t79 typed `playbooks check playbooks` from another directory and was pointed at the
    checkout's `playbooks/`, the package: typed, that hint listed every route's playbook
    as unknown ("does not exist (known: )"). A package of the checkout is no input."""
    from citybrain.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "no such directory" in err and "the checkout's" not in err, err
    if argv[0] == "playbooks":
        assert err.endswith(f"(the library's: {REPO / 'playbooks' / 'library' / 'playbooks'})\n")


@pytest.mark.parametrize("command", [["check"], ["route-test", "kind=pm25"]])
def test_a_playbook_directory_without_playbooks_is_said_so(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The checkout's playbooks/ package typed as the directory: one line saying it holds
    no playbooks and where the library's are, not a "does not exist (known: )" per route."""
    from citybrain.cli import main

    given = str(REPO / "playbooks")
    argv = ["playbooks", command[0], given, *command[1:]]
    if command[0] == "route-test":
        argv = ["playbooks", "route-test", "--dir", given, *command[1:]]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "known: )" not in err, err
    assert f"{given!r} holds no playbooks (*.yaml files); the library's are in " in err


def test_datasets_build_without_the_shared_data_says_what_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t79: `citybrain datasets build` from a clone with no team folder beside it said only
    "--shared '/…/shared/data/city': no such directory"."""
    from citybrain.cli import main

    argv = ["datasets", "build", "--shared", str(tmp_path / "none"), "--out", str(tmp_path / "o")]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "no such directory (the team's shared city data, by default ../shared/data/city" in err
    assert f"{REPO / 'datasets' / 'README.md'} lists each source file" in err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (
            [
                "rehearse",
                "--incidents",
                "datasets/nyc311_2024-05-26.csv.gz",
                "--units",
                "datasets/service_times/units-nyc.yaml",
            ],
            ["--units 'datasets/service_times/", "--incidents 'datasets/nyc311_"],
        ),
        (
            ["replay", "datasets/usgs_flood_2019-05.csv.gz", "no.csv"],
            ["FILE 'datasets/", "'no.csv'"],
        ),
        (
            ["report", "--prefix", "p", "--data", "a.csv", "b.csv", "--out", "o.html"],
            ["'a.csv'", "'b.csv'"],
        ),
        (["demo", "--data", "a.csv", "--grid", "g.yaml"], ["--data 'a.csv'", "--grid 'g.yaml'"]),
        (
            ["playbooks", "check", "--routing", "r.yaml", "--grid", "g.yaml"],
            ["--routing 'r.yaml'", "--grid 'g.yaml'"],
        ),
        (
            [
                *("campaign", "report", "--from", "today", "--to", "tomorrow"),
                *("--input", "x.jsonl", "--grid", "g.yaml"),
            ],
            ["--input 'x.jsonl'", "--grid 'g.yaml'"],
        ),
    ],
)
def test_every_missing_input_is_named_at_once(
    argv: list[str],
    named: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """t79: docs/citizens.md's rehearse command typed outside the checkout named --units
    alone; typed again with that path fixed, --incidents. Every missing input is named in
    the one refusal, in the order given, each with its own hint."""
    from citybrain.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path / "run"))
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.count("no such file") == 2, err
    assert [err.find(n) for n in named] == sorted(err.find(n) for n in named) and -1 not in [
        err.find(n) for n in named
    ], err


@pytest.mark.parametrize("key", list(INPUTS), ids=[" ".join((*k[0], k[1])) for k in INPUTS])
def test_a_quoted_tilde_in_a_file_argument_is_the_home_directory(
    key: tuple[tuple[str, ...], str],
    place: tuple[Path, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """t101: ``--data '~/x.csv'`` (quoted, so the shell left the ~) was read as a folder
    named ~ under this one, where path settings expand it; every FILE and DIR argument
    now reads it as the home directory, and a missing one is named expanded."""
    tmp, env = place
    monkeypatch.setenv("HOME", str(tmp))
    template, name, kind = INPUTS[key]
    argv = ["~/missing" if a == "X" else a.replace("T/", f"{tmp}/") for a in template]
    proc = run_in_process(argv, env)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    what = "directory" if kind == "DIR" else "file"
    expanded = str(tmp / "missing")
    assert proc.stderr.splitlines()[-1].startswith(
        f"citybrain: {name} {expanded!r}: no such {what}"
    ), proc.stderr


@pytest.mark.parametrize(
    "key", list(OUTPUT_OPTIONS), ids=[" ".join((*k[0], k[1])) for k in OUTPUT_OPTIONS]
)
def test_a_quoted_tilde_in_an_output_argument_is_the_home_directory(
    key: tuple[tuple[str, ...], str],
    place: tuple[Path, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tmp, env = place
    (tmp / "series.csv").write_text("timestamp,value\n2020-01-01,1\n")
    monkeypatch.setenv("HOME", str(tmp))
    template, name, suffixes = OUTPUT_OPTIONS[key]
    given = "~/a-file" if suffixes == "DIR" else f"~/missing/out{suffixes.split()[0]}"
    argv = [given if a == "X" else a.replace("T/", f"{tmp}/") for a in template]
    proc = run_in_process(argv, env)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    expanded = given.replace("~", str(tmp), 1)
    assert expanded in proc.stderr.splitlines()[-1] and name in proc.stderr, proc.stderr
    assert not (Path.cwd() / "~").exists()


@pytest.mark.parametrize("command", [["check"], ["route-test", "kind=pm25"]])
def test_a_playbook_library_given_as_the_playbook_directory_is_said_so(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Helper t102 copied the library (routing.yaml beside playbooks/) to edit it and typed
    `playbooks check COPY`: routing.yaml was read as a playbook missing every key and
    the real routing file's every route named a playbook that "does not exist (known: )",
    exit 1. Now one line naming the copy's playbook directory and routing file."""
    import shutil

    from citybrain.cli import main

    library = tmp_path / "library"
    shutil.copytree(REPO / "playbooks" / "library", library)
    argv = ["playbooks", command[0], str(library), *command[1:]]
    option = "the playbook directory"
    if command[0] == "route-test":
        argv = ["playbooks", "route-test", "--dir", str(library), *command[1:]]
        option = "--dir"
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err == (
        f"citybrain: {option} {str(library)!r} is a playbook library, not its playbook "
        f"directory: give {library / 'playbooks'} and --routing {library / 'routing.yaml'}\n"
    )
    # Its playbook directory, as the line says, is checked.
    assert main(["playbooks", "check", str(library / "playbooks")]) == 0


def test_a_playbook_library_as_the_playbook_directory_setting_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same slip in CITYBRAIN_PLAYBOOK_DIR stops the worker and every command at
    their settings (the worker read the routing file as a playbook and stopped on it)."""
    import shutil

    from streams.settings import Settings

    library = tmp_path / "library"
    shutil.copytree(REPO / "playbooks" / "library", library)
    monkeypatch.setenv("CITYBRAIN_PLAYBOOK_DIR", str(library))
    with pytest.raises(ValueError) as caught:
        Settings()
    assert (
        f"CITYBRAIN_PLAYBOOK_DIR is {str(library)!r}: a playbook library, not its playbook "
        f"directory: set it to {library / 'playbooks'} and CITYBRAIN_ROUTING_FILE to "
        f"{library / 'routing.yaml'}, or unset it for the built-in ones"
    ) in str(caught.value)


def test_a_valid_check_names_every_file_it_checked_in_full(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Helper t102 checked an edited copy's playbooks (`playbooks check COPY/playbooks`) and
    read "routing.yaml and grid.yaml are valid" as if the copy's routing file had been
    checked, where the default one was: the line names each file's full path."""
    import shutil

    from citybrain.cli import main
    from streams.settings import Settings

    library = tmp_path / "library"
    shutil.copytree(REPO / "playbooks" / "library", library)
    assert main(["playbooks", "check", str(library / "playbooks")]) == 0
    out = capsys.readouterr().out
    s = Settings()
    assert f" in {library / 'playbooks'}, " in out, out
    assert f", {Path(s.routing_file).resolve()} and {Path(s.grid_file).resolve()} are valid" in out


@pytest.mark.parametrize(
    ("argv", "env", "named", "shipped"),
    [
        (["rehearse", "--units", "u", "--incidents", "i"], {}, "--units 'u'", "units-nyc.yaml"),
        (["demo", "--grid", "g"], {}, "--grid 'g'", "datasets/grid.yaml"),
        (["playbooks", "check", "--routing", "r"], {}, "--routing 'r'", "routing.yaml"),
        (["replay", "f.csv"], {}, "FILE 'f.csv'", "nyc311_2024-05-26.csv.gz"),
        (
            ["playbooks", "check"],
            {"CITYBRAIN_GRID_FILE": "g"},
            "CITYBRAIN_GRID_FILE is 'g'",
            "grid",
        ),
    ],
)
def test_a_missing_input_names_the_files_the_checkout_ships_for_it(
    argv: list[str],
    env: dict[str, str],
    named: str,
    shipped: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """t116's walk: `rehearse --units u` and `demo --grid g` said only "no such file",
    with no word of the units profile or grid the checkout has for them (the shipped
    files are named in help examples only). Now the checkout's files of that role are
    named, by absolute path, at most three and how many more; a feed list leaves out the
    classifier's training data, which no command takes."""
    from citybrain.cli import main

    monkeypatch.chdir(tmp_path)  # nothing close there, nothing the checkout has either
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    start = err.index(named)
    said = err[start:].split(";")[0]
    assert said.startswith(f"{named}: no such file (the checkout's: '{REPO}/"), err
    assert shipped in said and "incident_departments" not in said


@pytest.mark.parametrize("command", [["check"], ["route-test", "kind=pm25"]])
def test_a_directory_of_other_yaml_is_said_to_hold_no_playbooks(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """t134: `playbooks check /tmp`, which held other YAML, gave an error per file and a
    "does not exist (known: )" per route: 15 lines for one cause."""
    from citybrain.cli import main

    (tmp_path / "compose.yaml").write_text("services:\n  a: {image: x}\n")
    (tmp_path / "bad.yaml").write_text("cells:\n\t- a\n")
    argv = ["playbooks", command[0], str(tmp_path), *command[1:]]
    if command[0] == "route-test":
        argv = ["playbooks", "route-test", "--dir", str(tmp_path), *command[1:]]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "known: )" not in err, err
    assert (
        f"{str(tmp_path)!r} holds no playbooks: none of its 2 .yaml files is a playbook "
        "(no top-level playbook: key); the library's are in "
    ) in err
    # One playbook among them, even a broken one: its errors are the playbook's to say.
    (tmp_path / "mine.yaml").write_text("playbook: mine\nversion: 1\n")
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "holds no playbooks" not in err and "compose.yaml:1: playbook: missing" in err


@pytest.mark.parametrize("how", ["option", "setting"])
def test_the_checkout_s_playbook_library_typed_elsewhere_names_its_parts(
    how: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """t143: `playbooks check playbooks/library` from /tmp was asked "did you mean
    '/…/playbooks/library', the checkout's?", which the same check then refused as a
    playbook library, not its playbook directory: the library's parts are named."""
    from citybrain.cli import main

    monkeypatch.chdir(tmp_path)
    if how == "setting":
        monkeypatch.setenv("CITYBRAIN_PLAYBOOK_DIR", "playbooks/library")
        argv = ["playbooks", "check"]
    else:
        argv = ["playbooks", "check", "playbooks/library"]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    library = REPO / "playbooks" / "library"
    assert (
        f"'playbooks/library': no such directory in {tmp_path} (the checkout's "
        f"{str(library)!r} is a playbook library: its playbook directory is "
        f"{str(library / 'playbooks')!r}, its routing file "
        f"{str(library / 'routing.yaml')!r})"
    ) in err, err
    assert "did you mean" not in err and err.count("\n") == 1, err

"""What an operator reads from `runs list`, `runs show` and `route-test` (issue 15, item 4)."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from citybrain.cli import EXIT_OK, EXIT_USAGE, main
from citybrain.cli.api import api_command, not_found_hint
from citybrain.cli.runs import (
    accepted_message,
    already_message,
    run_details,
    runs_table,
    superseded_hint,
    superseded_note,
)
from citybrain.commands import cli_command

NOW = time.time()
RUN = {
    "run_id": "grp-0123456789abcdef.1",
    "alert_id": "a1",
    "playbook": "flash-flood",
    "grid_cell": "md-gauge-01589330",
    "kind": "water_level",
    "department": "water",
    "labels": {},
    "alerts": ["a1", "a2"],
    "status": "waiting_ack",
    "step": "notify",
    "level": "street",
    "deadline_at": NOW + 90,
    "created_at": NOW - 600,
    "updated_at": NOW - 5,
    "acknowledged_at": None,
    "acknowledged_by": None,
    "resolved_at": None,
    "escalations": 1,
    "seq": 4,
    "sla_deadline_at": NOW + 3600,
    "sla_breached": False,
    "pending_action": None,
    "last_notified_at": None,
}
NAMES = {"md-gauge-01589330": "Dead Run at Franklintown"}


def test_the_table_has_a_column_per_question_and_local_times() -> None:
    lines = runs_table([RUN], NAMES, NOW).splitlines()
    assert lines[0].split() == [
        "RUN",
        "PLAYBOOK",
        "CELL",
        "LEVEL",
        "STATUS",
        "AGE",
        "NEXT",
        "DEADLINE",
    ]
    row = lines[1]
    for part in (
        "grp-0123456789abcdef.1",
        "flash-flood",
        "md-gauge-01589330 (Dead Run at Franklintown)",
        "street",
        "waiting_ack",
        "10 min",
    ):
        assert part in row
    zone = time.strftime("%Z", time.localtime(NOW + 90))
    # The step deadline is nearer than the SLA one; shown in local time with its zone.
    assert f"{zone} (step, in 90 s)" in row or f"{zone} (step, in 89 s)" in row


def test_a_finished_run_has_no_next_deadline() -> None:
    row = runs_table([{**RUN, "status": "resolved"}], {}, NOW).splitlines()[1]
    assert row.endswith("-") and "(" not in row  # no cell name without a grid


def test_show_names_each_field() -> None:
    text = run_details(RUN, NAMES, NOW)
    assert "cell           md-gauge-01589330 (Dead Run at Franklintown)" in text
    assert "alerts         2: a1, a2" in text
    assert "acknowledged   no" in text


def test_show_names_a_sensor_runs_sensor_and_its_labels_as_silence_matchers() -> None:
    """t189: a night operator told to silence a noisy sensor found its cell and kind in
    `runs show`, not its id (only `--json` had it). Fails on the old code: no such line."""
    from playbooks.routing import parse_silence_matchers

    labels = {
        "grid_cell": "aarhus-seg-158655",
        "kind": "traffic_speed",
        "severity": "minor",
        "sensor_id": "aarhus-158655-traffic_speed",
        "source": "sensor",
        "corroboration": "isolated",
        "assessment": "suspected_sensor_fault",
        "category": 'say"hi"\\',
    }
    other = {"team": "x"}  # another tool's label: no silence can name it here
    lines = run_details({**RUN, "labels": {**labels, **other}}, NAMES, NOW).splitlines()
    assert "sensor         aarhus-158655-traffic_speed" in lines
    [shown] = [ln for ln in lines if ln.startswith("labels ")]
    words = shown.split(None, 1)[1]
    assert 'sensor_id="aarhus-158655-traffic_speed"' in words.split()
    # Each is a matcher `silences add --matcher` takes, matching the label's own value.
    matchers = [parse_silence_matchers(m)[0] for m in words.split(" ")]
    assert {m.name: m.value for m in matchers} == labels  # quotes and backslashes escaped
    # A run without labels (a citizen burst keeps its own; an old run none) adds no line.
    bare = run_details(RUN, NAMES, NOW).splitlines()
    assert not any(ln.startswith(("sensor ", "labels ")) for ln in bare)


def test_show_lists_every_action_with_its_note_and_the_report_ids() -> None:
    done = {
        **RUN,
        "status": "resolved",
        "acknowledged_at": NOW - 300,
        "acknowledged_by": "duty-operator",
        "resolved_at": NOW - 60,
        "resolved_by": "duty-operator",
        "resolution": "pumped out",
        "reports": {"r-7": {"channel": "app", "status": "replied"}},
        "actions": [
            {"action": "ack", "by": "duty-operator", "at": NOW - 300, "note": "on my way"},
            {"action": "escalate", "by": "coord", "at": NOW - 200, "note": "", "level": "street"},
            {
                "action": "resolve",
                "by": "duty-operator",
                "at": NOW - 60,
                "note": "pumped out",
                "level": "community",  # given before the escalation was applied (t114)
            },
        ],
    }
    lines = run_details(done, NAMES, NOW).splitlines()
    resolved = next(ln for ln in lines if ln.startswith("resolved "))
    assert resolved.endswith("by duty-operator: pumped out")
    assert "reports        1: r-7 (replied)" in lines
    assert "actions        3" in lines
    assert lines[-3].endswith("ack by duty-operator: on my way")  # recorded before t114
    assert lines[-2].endswith("escalate by coord to street")
    assert lines[-1].endswith("resolve by duty-operator at community: pumped out")
    # A run with none of them says so rather than leaving the reader to guess.
    bare = run_details(RUN, NAMES, NOW).splitlines()
    assert "reports        none" in bare and bare[-1] == "actions        none"


def test_a_repeated_action_says_it_had_already_happened() -> None:
    text = already_message(
        "r1", {"action": "ack", "by": "duty-operator", "at": NOW - 90, "note": "on my way"}, NOW
    )
    assert text.startswith("unchanged: run r1 was already acknowledged by duty-operator at ")
    assert text.endswith('(90 s ago) with note "on my way"')
    assert "accepted" not in text


def test_an_ack_repeated_on_a_run_resolved_since_says_it_is_resolved() -> None:
    """t209: acking a run another operator had acknowledged and then resolved said only
    "already acknowledged by ...", as if the run were still open; the API's answer now
    carries the run's status, said when the run has ended since (fails on the old code:
    no status taken)."""
    ack = {"action": "ack", "by": "duty-operator", "at": NOW - 90, "note": ""}
    text = already_message("r1", ack, NOW, "resolved")
    assert text.startswith("unchanged: run r1 was already acknowledged by duty-operator")
    assert text.endswith("; it is resolved now")
    # Open still, or the action's own outcome: nothing more to say.
    assert "; it is" not in already_message("r1", ack, NOW, "waiting_action")
    resolved = {"action": "resolve", "by": "duty-operator", "at": NOW - 90, "note": ""}
    assert "; it is" not in already_message("r1", resolved, NOW, "resolved")


def test_the_same_answer_again_says_it_was_given_already_with_the_run_status() -> None:
    """t219: the same `runs answer` twice exited 1 on the API's 409; the API now answers
    the repeat with "already" (the answer given, by whom, when) and the run's status,
    said as every repeated action is: unchanged, exit 0."""
    given = {"action": "answer", "report_id": "r-0", "satisfied": False, "by": "desk"}
    text = already_message("r1", {**given, "at": NOW - 90, "comment": "still loud"}, NOW, "active")
    assert text.startswith("unchanged: report r-0 of run r1 was already answered not satisfied ")
    assert "by desk at " in text and '(90 s ago) with comment "still loud"' in text
    assert text.endswith("; run r1 is active now")
    kept = already_message("r1", {**given, "satisfied": True, "by": None, "at": None}, NOW)
    assert kept == "unchanged: report r-0 of run r1 was already answered satisfied"


def test_an_escalation_already_done_says_by_whom_and_how_to_go_on() -> None:
    moved = {"action": "escalate", "level": "district", "from_level": "street"}
    text = already_message("r1", {**moved, "by": "coord-a", "at": NOW - 5, "note": ""}, NOW)
    assert text.startswith("unchanged: run r1 was already escalated from street to district ")
    assert "by coord-a at " in text and text.endswith("with --from district")
    ladder = already_message("r1", {**moved, "by": None, "at": None}, NOW)
    assert "by the playbook's ladder (a deadline passed); escalate it again" in ladder


def test_an_unknown_report_points_at_runs_show_which_lists_report_ids() -> None:
    hint = not_found_hint("/runs/r1/answer", "run r1 covers no report 'r-9'")
    assert hint == f"; see the run's report ids with `{cli_command()} runs show r1`"
    # A run with no report at all: nothing for `runs show` to list (t48).
    none = "run r1 covers no report 'r-9': it covers no citizen report at all"
    assert not_found_hint("/runs/r1/answer", none) == ""
    # An unknown run is still found with `runs list`, an unknown silence with its list.
    assert not_found_hint("/runs/r1/answer", "no run 'r1'").endswith(f"`{cli_command()} runs list`")
    assert not_found_hint("/silences/s1", "no silence 's1'").endswith(
        f"`{cli_command()} silences list`"
    )


def _route_test(*labels: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["playbooks", "route-test", *labels])
    return code, out.getvalue(), err.getvalue()


def test_route_test_ignores_alertname_saying_why_and_still_checks_the_rest() -> None:
    """Second trial: amtool users type alertname=...; it was refused as unknown and hid
    the real error (a bad severity) behind it."""
    code, out, err = _route_test("alertname=x", "severity=huge", "kind=water_level")
    assert code == EXIT_USAGE
    # A warning, on stderr (t83): the routes written to a file were the answer alone.
    assert "citybrain: warning: ignored 'alertname=x': citybrain alerts carry no alertname" in err
    assert "alertname" not in out
    assert "severity='huge': expected one of critical, major, minor" in err


def test_route_test_refuses_an_unknown_label_name() -> None:
    code, _, err = _route_test("source=sensor", "knid=water_level")
    assert code == EXIT_USAGE
    assert err.startswith("citybrain: label 'knid=water_level': unknown label 'knid', expected")
    assert "'kind'" in err  # the names it takes are listed


@pytest.mark.parametrize("labels", [("source=sensor", "kind=water_level")])
def test_route_test_names_the_labels_it_was_not_given(labels: tuple[str, ...]) -> None:
    code, out, _ = _route_test(*labels)
    assert code == EXIT_OK
    lines = out.splitlines()
    first = next(ln for ln in lines if ln.startswith("not given, so matched as empty: "))
    missing = first.split(": ", 1)[1].split(", ")
    assert "severity" in missing and "category" in missing and "kind" not in missing
    routes = [ln for ln in lines if ln.startswith("route ")]
    assert routes and "playbook flash-flood" in routes[0]


def test_an_unsatisfied_answer_says_it_reopens_the_run() -> None:
    doc = {"command": {"id": "c1", "by": "ana"}}
    reply = accepted_message("answer", "r1", doc, satisfied=False)
    assert reply.startswith("accepted: answer of run r1 by ana (command c1)")
    assert "an unsatisfied answer reopens the run" in reply
    assert "reopen" not in accepted_message("answer", "r1", doc, satisfied=True)
    said = accepted_message("answer", "r1", {**doc, "reopened": True}, satisfied=False)
    assert said.endswith("run r1 was reopened")


def test_an_answer_to_one_part_of_a_report_says_which_part() -> None:
    # A report covered by runs of two groups: the answer is for this run's part only.
    other = {"group": "grp-b", "playbook": "citizen-report-burst", "department": "parks"}
    part = {"run_id": "r1", "department": "police", "report_id": "x-1", "also": [other]}
    doc = {"command": {"id": "c1", "by": "ana"}, "part": part}
    reply = accepted_message("answer", "r1", doc, satisfied=True)
    assert "this is the police part of report x-1, which also has: parks (runs grp-b.N)" in reply
    alone = {**doc, "part": {**part, "also": []}}
    assert "part" not in accepted_message("answer", "r1", alone, satisfied=True)


def test_the_table_fits_a_narrow_terminal_and_says_what_it_left_out() -> None:
    runs = [RUN, {**RUN, "run_id": "grp-fedcba9876543210.2", "status": "resolved"}]
    wide = runs_table(runs, NAMES, NOW).splitlines()
    assert max(len(line) for line in wide) > 80  # the case: names and clock times
    for width in (80, 70):
        lines = runs_table(runs, NAMES, NOW, width).splitlines()
        assert all(len(line) <= width for line in lines), lines
        assert lines[-1].endswith("cell names, clock times)")
        # What an operator acts on stays: the run id, its cell, status and time left.
        for part in ("grp-0123456789abcdef.1", "md-gauge-01589330", "waiting_ack", "step in"):
            assert part in lines[1]
    assert "--wide adds AGE, PLAYBOOK, cell" in runs_table(runs, NAMES, NOW, 80).splitlines()[-1]
    assert "adds AGE, PLAYBOOK, LEVEL, cell" in runs_table(runs, NAMES, NOW, 70).splitlines()[-1]
    # Wide enough: exactly the full table, no note.
    assert runs_table(runs, NAMES, NOW, 500).splitlines() == wide


def test_tables_fit_a_terminal_or_columns_and_give_a_pipe_every_column(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The case: the demo's e2e test read `runs list` through a pipe and got the 80-column
    # table (no PLAYBOOK): a script reading the output wants every column.
    from citybrain.cli.runs import table_width

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    assert table_width(False) is None
    monkeypatch.setenv("COLUMNS", "80")
    assert table_width(False) == 80
    assert table_width(True) is None
    for odd in ("²", "８０", "1e3"):  # helper t52: int("²") raised, exit 70
        monkeypatch.setenv("COLUMNS", odd)
        assert table_width(False) is None
    # t190: int() of 5,000 digits raised "Exceeds the limit (4300 digits)", exit 70; wider
    # than any terminal is every column, at a terminal too.
    monkeypatch.setenv("COLUMNS", "9" * 5000)
    assert table_width(False) is None
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert table_width(False) is None
    monkeypatch.setenv("COLUMNS", "000120")
    assert table_width(False) == 120
    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    monkeypatch.delenv("COLUMNS")
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert isinstance(table_width(False), int)


@pytest.mark.parametrize(
    ("argv", "path"),
    [
        (["runs", "show", "a b"], "/api/v1/runs/a%20b"),
        (["runs", "show", "é"], "/api/v1/runs/%C3%A9"),
        (["runs", "show", "x/../../silences"], "/api/v1/runs/x%2F..%2F..%2Fsilences"),
        (["runs", "ack", "r?x=1", "--note", "n"], "/api/v1/runs/r%3Fx%3D1/ack"),
        (["silences", "expire", "s#1"], "/api/v1/silences/s%231"),
    ],
)
def test_an_id_is_one_path_segment_of_the_request(argv: list[str], path: str) -> None:
    # A space or é was an InvalidURL/UnicodeEncodeError traceback ("a bug", exit 70);
    # x/../.. and r?x=1 addressed another resource than the run.
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append(self.path)
            body = json.dumps({"error": "no run"}).encode()
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            status = main([*argv, "--token", "t", "--url", url])
    finally:
        server.shutdown()
        server.server_close()
    # After the 404, the list of its kind is asked for the closest id (t40).
    assert seen == [path, "/".join(path.split("/")[:4])] and status != 70


def test_a_long_id_is_cut_in_the_refusal_line() -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"error": "no run 'xxx'... (300 characters)"}).encode()
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    err = io.StringIO()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            status = main(["runs", "show", "x" * 300, "--token", "t", "--url", url])
    finally:
        server.shutdown()
        server.server_close()
    assert status == 1
    assert f"refused GET /runs/{'x' * 94}... (306 characters): HTTP 404" in err.getvalue()
    assert "x" * 201 not in err.getvalue()


@pytest.mark.parametrize("shape", ["endless", "declared", "not_json", "endless_error"])
def test_an_answer_too_large_endless_or_not_json_is_refused_naming_the_url(
    shape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t194: `citybrain runs list` read the answer whole (json.load): an endless one (a
    --url that is no worker, a fault) grew the command's memory for ever, each read
    within its 10 s. Now at most MAX_ANSWER_BYTES are read, then it stops naming the
    URL, exit 1, no traceback; an error's body is read at most MAX_ERROR_BYTES."""
    monkeypatch.setattr("citybrain.cli.api.MAX_ANSWER_BYTES", 1_000_000)
    monkeypatch.setattr("citybrain.cli.api.MAX_ERROR_BYTES", 10_000)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(500 if shape == "endless_error" else 200)
            self.send_header("Content-Type", "application/json")
            if shape == "declared":
                self.send_header("Content-Length", str(10**12))
            elif shape == "not_json":
                self.send_header("Content-Length", "5")
            self.end_headers()
            try:
                if shape == "not_json":
                    self.wfile.write(b"hello")
                    return
                while True:
                    self.wfile.write(b"[" * 65536)
            except OSError:
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    err = io.StringIO()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            status = main(["runs", "list", "--token", "t", "--url", url])
    finally:
        server.shutdown()
        server.server_close()
    said = err.getvalue()
    assert status == 1, said
    assert url in said and "Traceback" not in said
    want = {
        "endless": "more than the 1,000,000 bytes read: not read further",
        "declared": "1,000,000,000,000 bytes declared",
        "not_json": "5 bytes that are not JSON",
        "endless_error": "HTTP 500: (its answer not read: more than the 10,000 bytes read)",
    }[shape]
    assert want in said, said


def test_runs_list_says_how_many_superseded_runs_it_hides_and_how_to_see_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trial 7: run .1, reopened twice and escalated, vanished from `runs list` when .2
    opened, with no word. Run g.3 superseded g.1 and g.2; g.1 superseded nothing."""
    latest = [{**RUN, "run_id": "grp-a.3"}, {**RUN, "run_id": "grp-b.1"}]
    assert superseded_hint([{**RUN, "run_id": "grp-b.1"}]) is None
    # Helper t52: "²".isdigit() is true, and int("²") ended `runs list` (exit 70).
    assert superseded_hint([{**RUN, "run_id": "grp-b.²"}, {**RUN, "run_id": "c.٣"}]) is None
    hint = superseded_hint(latest)
    assert hint == (
        "2 superseded runs not listed (a later run of the same group replaced each): "
        f"see one with {api_command('runs', 'show', 'grp-a.2')}"
    )
    monkeypatch.setattr("citybrain.cli.api._api", lambda *args, **kw: {"runs": latest})
    monkeypatch.setattr("citybrain.cli.runs._cell_names", lambda: NAMES)
    assert main(["runs", "list"]) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("2 runs; times in local time") and out[1] == hint


def paged_worker(pages: dict[str, dict[str, Any]], asked: list[str]) -> Any:
    """A fake ``_api`` answering GETs of ``pages`` by path, recording each in ``asked``."""

    def answer(args: Any, method: str, path: str, body: Any = None) -> dict[str, Any]:
        asked.append(path)
        return pages[path]

    return answer


def test_runs_list_follows_every_page(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t186: GET /runs is paged; `runs list` (and --json) reads every page, following
    each answer's next link until it is null."""
    runs = [{**RUN, "run_id": f"grp-{n}.1"} for n in range(5)]
    pages = {
        "/runs?status=open": {"runs": runs[:2], "next": "/api/v1/runs?status=open&cursor=c1.a"},
        "/runs?status=open&cursor=c1.a": {
            "runs": runs[2:4],
            "next": "/api/v1/runs?status=open&cursor=c1.b",
        },
        "/runs?status=open&cursor=c1.b": {"runs": runs[4:], "next": None},
    }
    asked: list[str] = []
    monkeypatch.setattr("citybrain.cli.api._api", paged_worker(pages, asked))
    monkeypatch.setattr("citybrain.cli.runs._cell_names", lambda: NAMES)
    assert main(["runs", "list", "--status", "open"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("5 runs; times in local time")
    assert all(f"grp-{n}.1" in out for n in range(5))
    assert asked == list(pages)
    assert main(["runs", "list", "--status", "open", "--json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in doc["runs"]] == [f"grp-{n}.1" for n in range(5)]
    assert doc["next"] is None


def test_runs_list_says_which_workers_runs_are_not_in_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t194: a page that lacks some workers' runs (a rolling upgrade, a slow worker) says
    so in its warnings; `runs list` prints each once on stderr, --json keeps them."""
    line = (
        "the runs of partition 3 are not in this list: the worker at http://w2:6066 (it did "
        "not answer within 15 s); list again in a few seconds"
    )
    pages = {
        "/runs": {"runs": [RUN], "next": "/api/v1/runs?cursor=c1.a", "warnings": [line]},
        "/runs?cursor=c1.a": {"runs": [], "next": None, "warnings": [line]},
    }
    monkeypatch.setattr("citybrain.cli.api._api", paged_worker(pages, []))
    monkeypatch.setattr("citybrain.cli.runs._cell_names", lambda: NAMES)
    assert main(["runs", "list"]) == EXIT_OK
    captured = capsys.readouterr()
    assert captured.err == f"citybrain: warning: {line}\n"
    assert captured.out.startswith("1 run; times in local time")
    assert main(["runs", "list", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["warnings"] == [line]


def test_runs_list_stops_at_a_next_link_that_loops(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pages = {
        "/runs": {"runs": [RUN], "next": "/api/v1/runs?cursor=c1.a"},
        "/runs?cursor=c1.a": {"runs": [RUN], "next": "/api/v1/runs?cursor=c1.a"},
    }
    monkeypatch.setattr("citybrain.cli.api._api", paged_worker(pages, []))
    assert main(["runs", "list"]) == 1
    err = capsys.readouterr().err
    assert "with a next page '/api/v1/runs?cursor=c1.a' that it gave before (a loop)" in err
    assert "Traceback" not in err


RUNS_SHOW = "the id as `runs list` or `runs show` shows it"
SILENCES_SHOW = "an id as `silences list` shows it"
REPORTS_SHOW = "a report's id as `runs show RUN_ID` lists it"


@pytest.mark.parametrize(
    ("argv", "name", "where"),
    [
        (["runs", "ack", ""], "RUN_ID", RUNS_SHOW),
        (["runs", "show", " "], "RUN_ID", RUNS_SHOW),
        (["runs", "answer", "r.1", "--report", "", "--satisfied"], "--report", REPORTS_SHOW),
        (["silences", "expire", ""], "SILENCE_ID", SILENCES_SHOW),
        (["runs", "ack", "r.1", "--idempotency-key", ""], "--idempotency-key", "a key of your"),
    ],
)
def test_an_empty_id_is_refused_before_the_api_is_asked(
    capsys: pytest.CaptureFixture[str], argv: list[str], name: str, where: str
) -> None:
    """Each id's refusal says where to find one (t68's walk: `silences expire ''` said
    "as `list` or `show` shows it", and `silences show` is no command)."""
    # --url points nowhere: had the API been asked, the error would say it is unreachable.
    assert main([*argv, "--token", "t", "--url", "http://127.0.0.1:1"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert f"argument {name}: " in err and f"give {where}" in err


@pytest.mark.parametrize(
    ("argv", "name", "where"),
    [
        (["runs", "ack", "RUN_ID", "--note", "on my way"], "RUN_ID", RUNS_SHOW),
        (["runs", "show", "<run_id>"], "RUN_ID", RUNS_SHOW),
        (
            ["runs", "answer", "r.1", "--report", "REPORT_ID", "--satisfied"],
            "--report",
            REPORTS_SHOW,
        ),
        (["silences", "expire", "SILENCE_ID"], "SILENCE_ID", SILENCES_SHOW),
    ],
)
def test_a_placeholder_typed_as_printed_is_refused_before_the_api_is_asked(
    capsys: pytest.CaptureFixture[str], argv: list[str], name: str, where: str
) -> None:
    """t60's walk: `runs ack RUN_ID`, typed as the README prints it, got the API's 404
    with no word that RUN_ID stands for an id."""
    assert main([*argv, "--token", "t", "--url", "http://127.0.0.1:1"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert f"argument {name}: " in err
    assert f"is the placeholder the examples print: give {where}" in err


@pytest.mark.parametrize("note", [" ", "\u200b"])  # t137: one that shows nothing too
@pytest.mark.parametrize("action", ["resolve", "cancel"])
def test_an_empty_note_is_refused_where_the_api_would_refuse_it(
    capsys: pytest.CaptureFixture[str], action: str, note: str
) -> None:
    argv = ["runs", action, "r.1", "--note", note, "--token", "t", "--url", "http://127.0.0.1:1"]
    assert main(argv) == EXIT_USAGE
    assert capsys.readouterr().err == (
        f"citybrain: --note is empty: {action} needs a note saying why, for the audit trail\n"
    )


def test_an_api_hint_carries_only_the_settings_the_command_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", "19792")
    monkeypatch.setenv("CITYBRAIN_PROMETHEUS_PORT", "19790")
    monkeypatch.setenv("CITYBRAIN_WORKER_PORT", "16766")
    hint = not_found_hint("/runs/x/ack", "no run 'x'")
    assert hint == f"; check the id with `CITYBRAIN_WORKER_PORT=16766 {cli_command()} runs list`"
    # Given --url, the hint keeps it: the listing is asked of the same worker.
    url = "http://10.0.0.5:16066"
    assert not_found_hint("/silences/s", "no silence", url).endswith(f"silences list --url {url}`")


def test_an_unreachable_url_is_answered_with_a_worker_there(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CITYBRAIN_WORKER_PORT", raising=False)
    # A run directory with no demo: a demo left running on this machine's default one
    # (t116's walk) made the hint name its worker instead, as it should for a user.
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    assert main(["runs", "list", "--token", "t", "--url", "http://127.0.0.1:1"]) != EXIT_OK
    err = capsys.readouterr().err
    assert "start one on port 1 (`" in err and " CITYBRAIN_WORKER_PORT=1 " in err
    assert "16066" not in err
    assert main(["runs", "list", "--token", "t", "--url", "http://worker.invalid:1"]) != EXIT_OK
    assert "check --url, or that the worker on worker.invalid runs" in capsys.readouterr().err


def test_show_escapes_control_characters_a_reporter_or_an_operator_typed() -> None:
    """Trial 22: a reporter's comment with a newline forged a line of `runs show`, and
    one with an escape sequence (ESC [2J) cleared the operator's terminal. Unicode
    letters stay as they are; only control characters are shown as their escapes."""
    comment = "musique à 2h 🎵\n  2024-05-27 04:00  resolve by chief: fake\x1b[2J"
    run = {
        **RUN,
        "status": "open",
        "resolution": "done\rover",
        "reports": {"r-\x07": {"channel": "app", "status": "unsatisfied"}},
        "actions": [{"action": "answer", "by": "desk", "at": NOW - 5, "note": comment}],
    }
    text = run_details(run, NAMES, NOW)
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    lines = text.splitlines()
    assert lines[-1].endswith(
        "answer by desk: musique à 2h 🎵\\n  2024-05-27 04:00  resolve by chief: fake\\x1b[2J"
    )
    assert "reports        1: r-\\x07 (unsatisfied)" in lines
    note = already_message("r1", {"action": "resolve", "by": "a\nb", "note": "x\x1by"}, NOW)
    assert note == 'unchanged: run r1 was already resolved by a\\nb with note "x\\x1by"'


def test_an_unknown_report_near_a_covered_one_gets_the_command_with_it() -> None:
    from citybrain.cli.api import answer_again

    reason = "run r1 covers no report 'nyc311-6127924' (did you mean 'nyc311-61279245'?)"
    argv = ["runs", "answer", "r1", "--report", "nyc311-6127924", "--satisfied", "--token", "t"]
    said = answer_again("nyc311-6127924", reason, argv)
    assert said.startswith(": `") and said.endswith(
        "runs answer r1 --report nyc311-61279245 --satisfied` with your --token"
    ), said
    assert answer_again("x", reason, ["runs", "answer", "r1", "--report=x"]) == ""


def test_the_api_s_text_never_drives_the_terminal() -> None:
    """Helper t52: `runs show` of a superseded run and an accepted action printed the
    API's words raw (a report id is a citizen app's): an escape sequence or a
    right-to-left override in them reached the operator's terminal."""
    evil = "r-1\x1b]0;owned\x07\u202e\x9b2J"
    doc = {
        "command": {"id": "c1", "by": "ana\x1b[2J"},
        "part": {"report_id": evil, "department": "police", "also": [{"department": evil}]},
    }
    for line in (
        accepted_message("answer", "r1", doc, satisfied=False),
        superseded_note({"superseded_by": evil, "superseded_at": NOW, "note": evil}, NOW),
    ):
        assert all(c.isprintable() for c in line.replace("\n", "")), repr(line)
        assert "\\x1b]0;owned\\x07\\u202e\\x9b2J" in line


def test_silences_add_says_how_many_firing_alerts_the_silence_matches(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t71: a valid silence that matches every alert firing (``alert_id=~".+"``) is said
    so plainly after it is added, with how to expire it; another says how many it matches."""
    silence = {"id": "s-1", "author": "op", "matchers": ['alert_id=~".+"'], "ends_at": 9e9}
    answer = {"silence": silence, "firing_matched": 3, "firing": 3}
    monkeypatch.setattr("citybrain.cli.silences._api", lambda *args, **kw: answer)
    argv = ["silences", "add", "--matcher", 'alert_id=~".+"', "--duration", "1h"]
    assert main([*argv, "--reason", "test"]) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert out[1] == (
        "it matches every alert firing now (3 alerts): check its matchers, or expire it: "
        f"`{api_command('silences', 'expire', 's-1')}`"
    )
    answer.update(firing_matched=1)
    assert main([*argv, "--reason", "test"]) == EXIT_OK
    assert capsys.readouterr().out.splitlines()[1] == "it matches 1 of the 3 alerts firing now"


def test_an_alert_cell_or_report_id_typed_for_a_run_names_its_run() -> None:
    """t102: `runs show al-4385…` (an alert id, as /alerts and the demo's summary show
    them), `runs ack nyc-cb-…` (the run's cell) or a report id got only "no run …"; the
    404's line now names the run (or runs) it belongs to."""
    from citybrain.cli.api import runs_named_by

    runs = [
        {"run_id": "grp-a.1", "alert_id": "al-1", "alerts": ["al-1", "al-2"], "grid_cell": "c-1"},
        {"run_id": "grp-b.2", "alert_id": "al-3", "ended_alerts": ["al-4"], "grid_cell": "c-1"},
        {"run_id": "grp-c.1", "alert_id": "al-5", "reports": {"nyc311-7": {}}, "grid_cell": "c-2"},
        {"run_id": "grp-d.1", "alerts": None},  # another shape: skipped, not a crash
    ]
    assert runs_named_by("al-2", runs) == ("an alert id", ["grp-a.1"])
    assert runs_named_by("al-4", runs) == ("an alert id", ["grp-b.2"])
    assert runs_named_by("c-1", runs) == ("the grid cell", ["grp-a.1", "grp-b.2"])
    assert runs_named_by("nyc311-7", runs) == ("a citizen report id", ["grp-c.1"])
    assert runs_named_by("grp-a.9", runs) is None


def test_times_are_told_by_the_workers_clock_not_the_operators(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # t114: an operator whose clock was 5 min ahead read a deadline 2 min away as
    # "3 min overdue", and a run created a minute ago as "0 s ago"; the API's answers
    # carry the worker's clock in their Date header.
    from citybrain.cli import api

    local = 1_800_000_000.0
    ahead = "Fri, 15 Jan 2027 07:55:00 GMT"  # the worker, 5 min behind this clock
    server = 1_799_999_700.0
    assert api.clock_offset(ahead, local) == server - local
    assert api.clock_offset("Fri, 15 Jan 2027 08:00:01 GMT", local) == 0.0  # within 2 s
    for odd in (None, "", "yesterday", "Fri, 99 Foo 2027 25:61:61 GMT"):
        assert api.clock_offset(odd, local) == 0.0
    monkeypatch.setitem(api._CLOCK, "offset", -300.0)
    monkeypatch.setattr(api.time, "time", lambda: local)
    assert api.api_now() == local - 300.0


@pytest.mark.parametrize(("note", "said"), [("", "empty"), ("  ", "blank"), ("\u200b", "blank")])
@pytest.mark.parametrize("action", ["ack", "escalate", "approve", "reject"])
def test_an_empty_note_on_an_action_that_needs_none_is_refused_naming_the_option(
    capsys: pytest.CaptureFixture[str], action: str, note: str, said: str
) -> None:
    """t156: `runs ack R --note ''` (a script's unset "$NOTE") went out as the same
    request as an ack with no --note, unsaid. Refused before the API is asked, naming
    the option and how to act without a note (leave --note out), as an empty value of
    any option is (README, exit status 2)."""
    argv = ["runs", action, "r.1", "--note", note, "--token", "t", "--url", "http://127.0.0.1:1"]
    if action == "escalate":
        argv += ["--from", "community"]
    assert main(argv) == EXIT_USAGE
    assert capsys.readouterr().err == (
        f"citybrain: --note is {said}: give a note, or leave --note out to {action} without one\n"
    )


@pytest.mark.parametrize(("comment", "said"), [("", "empty"), ("  \t", "blank")])
def test_an_empty_comment_on_an_answer_is_refused_naming_the_option(
    capsys: pytest.CaptureFixture[str], comment: str, said: str
) -> None:
    """A sibling of t156's empty --note: `runs answer R --report r --satisfied --comment
    "$COMMENT"` with COMMENT unset relayed an answer with no comment, unsaid. Refused
    before the API is asked, naming the option and how to answer without one."""
    argv = ["runs", "answer", "r.1", "--report", "r-7", "--satisfied", "--comment", comment]
    argv += ["--token", "t", "--url", "http://127.0.0.1:1"]
    assert main(argv) == EXIT_USAGE
    assert capsys.readouterr().err == (
        f"citybrain: --comment is {said}: give the reporter's comment, or leave --comment "
        "out to relay the answer without one\n"
    )


def test_silences_list_follows_every_page(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t186: GET /silences is paged; `silences list` reads every page."""
    silence = {"author": "op", "matchers": ['kind="pm25"'], "starts_at": 1.0, "ends_at": 9e9}
    pages = {
        "/silences": {
            "silences": [{**silence, "id": "s-1"}],
            "next": "/api/v1/silences?cursor=c1.a",
        },
        "/silences?cursor=c1.a": {"silences": [{**silence, "id": "s-2"}], "next": None},
    }
    monkeypatch.setattr("citybrain.cli.api._api", paged_worker(pages, []))
    assert main(["silences", "list"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("2 silences") and "s-1" in out and "s-2" in out


def _run_in(n: int, district: str, street: str, status: str = "waiting_ack") -> dict[str, Any]:
    labels = {"district": district, "street": street, "source": "sensor"}
    return {**RUN, "run_id": f"grp-{n}.1", "labels": labels, "status": status}


def test_runs_list_takes_matchers_on_the_runs_labels_and_prints_ids_for_a_loop(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t200: a coordinator on a flood across two districts could list runs by status only:
    no district's or street's runs alone, and no list of ids to escalate a district's runs
    in a loop. --matcher (silences add's syntax, on the labels runs show gives) filters,
    every page read; --ids prints one run id a line."""
    runs = [
        _run_in(0, "md-baltimore-county", "md-dead-run"),
        _run_in(1, "md-montgomery-county", "md-sligo-creek"),
        _run_in(2, "md-baltimore-county", "md-gwynns-falls"),
    ]
    pages = {
        "/runs": {"runs": runs[:2], "next": "/api/v1/runs?cursor=c1.a"},
        "/runs?cursor=c1.a": {"runs": runs[2:], "next": None},
    }
    monkeypatch.setattr("citybrain.cli.api._api", paged_worker(pages, []))
    monkeypatch.setattr("citybrain.cli.runs._cell_names", lambda: NAMES)
    assert main(["runs", "list", "--matcher", "district=md-baltimore-county"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith(
        "2 of 3 runs match --matcher district=md-baltimore-county; times in local time"
    )
    assert "grp-0.1" in out and "grp-2.1" in out and "grp-1.1" not in out
    argv = ["runs", "list", "--matcher", "district=md-baltimore-county", "--ids"]
    assert main(argv) == EXIT_OK
    assert capsys.readouterr().out == "grp-0.1\ngrp-2.1\n"
    argv = ["runs", "list", "--matcher", 'street=~"md-dead.*|md-sligo.*"', "--ids"]
    assert main([*argv, "--matcher", "district!=md-montgomery-county"]) == EXIT_OK
    assert capsys.readouterr().out == "grp-0.1\n"
    assert main(["runs", "list", "--matcher", "district=md-baltimore-county", "--json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)["runs"]] == [
        "grp-0.1",
        "grp-2.1",
    ]


def test_a_runs_list_matcher_no_alert_can_meet_is_warned_of_with_the_closest(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typed district the grid lacks lists nothing: said, with the one meant; a matcher
    that is no matcher is a usage error naming the option."""
    pages = {"/runs": {"runs": [_run_in(0, "md-baltimore-county", "md-dead-run")], "next": None}}
    monkeypatch.setattr("citybrain.cli.api._api", paged_worker(pages, []))
    monkeypatch.setattr("citybrain.cli.runs._cell_names", lambda: NAMES)
    assert main(["runs", "list", "--matcher", "district=md-baltimore", "--ids"]) == EXIT_OK
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "citybrain: warning: --matcher 'district=md-baltimore': district is never" in (
        captured.err
    )
    assert "(did you mean 'md-baltimore-county'?)" in captured.err
    assert main(["runs", "list", "--matcher", "district~x"]) == EXIT_USAGE
    assert capsys.readouterr().err.startswith("citybrain: --matcher: matcher 'district~x'")
    assert main(["runs", "list", "--ids", "--json"]) == EXIT_USAGE


def test_the_table_says_who_acknowledged_each_run() -> None:
    """t200: an acknowledged open run read `open` as one nobody had taken did, and who
    had acknowledged what took a `runs show` per run on a night of forty runs."""
    acked = {**RUN, "run_id": "grp-1.1", "status": "open", "acknowledged_by": "duty-1"}
    lines = runs_table([RUN, acked], NAMES, NOW).splitlines()
    assert "waiting_ack " in lines[1] and "acked" not in lines[1]
    assert "open, acked by duty-1" in lines[2]
    assert "acked by" not in run_details(acked, NAMES, NOW).splitlines()[4]


def test_runs_list_active_is_every_run_not_ended(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t200: `--status open` is one status, a run whose steps ran out; a flood night's
    runs still waiting for an acknowledgement were not in the runbook's `runs list
    --status open`, nor in its escalation loop. --active is every status but resolved,
    cancelled and failed, with or without matchers."""
    runs = [
        _run_in(0, "d1", "s1", "waiting_ack"),
        _run_in(1, "d1", "s1", "open"),
        _run_in(2, "d1", "s1", "resolved"),
        _run_in(3, "d1", "s1", "cancelled"),
        _run_in(4, "d2", "s2", "running"),
        _run_in(5, "d1", "s1", "waiting_approval"),
    ]
    pages = {"/runs": {"runs": runs, "next": None}}
    monkeypatch.setattr("citybrain.cli.api._api", paged_worker(pages, []))
    monkeypatch.setattr("citybrain.cli.runs._cell_names", lambda: NAMES)
    assert main(["runs", "list", "--active", "--ids"]) == EXIT_OK
    assert capsys.readouterr().out.split() == ["grp-0.1", "grp-1.1", "grp-4.1", "grp-5.1"]
    assert main(["runs", "list", "--active", "--matcher", "district=d1", "--ids"]) == EXIT_OK
    assert capsys.readouterr().out.split() == ["grp-0.1", "grp-1.1", "grp-5.1"]
    assert main(["runs", "list", "--active", "--matcher", "district=d1"]) == EXIT_OK
    assert capsys.readouterr().out.startswith(
        "3 of 6 runs match --active --matcher district=d1; times in local time"
    )
    assert main(["runs", "list", "--active", "--status", "open"]) == EXIT_USAGE

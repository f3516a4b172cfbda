"""The ``citybrain`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detectors import DEFAULT_DETECTOR
from streams.settings import REPO_ROOT, Settings, load_settings

if TYPE_CHECKING:
    from citybrain.rehearse import Incident
    from detectors import Detector


def _settings() -> Settings:
    return load_settings()


def cmd_stack(args: argparse.Namespace) -> int:
    from citybrain.stack import KafkaBroker, PrometheusServer
    from citybrain.stack.topics import create_topics

    s = _settings()
    kafka, prom = KafkaBroker(s), PrometheusServer(s)
    if args.action == "up":
        kafka.start()
        print(f"kafka       ready on {s.kafka_bootstrap}")
        created = create_topics(s)
        print(f"topics      {len(created)} created, {len(s.topics)} in all")
        prom.start()
        print(f"prometheus  ready on {prom.url}")
    elif args.action == "down":
        for name, comp in (("prometheus", prom), ("kafka", kafka)):
            print(f"{name:11} {'stopped' if comp.stop() else 'was not running'}")
        if args.wipe:
            kafka.wipe()
            print("kafka       data wiped")
    else:
        ok = True
        for name, comp, where in (
            ("kafka", kafka, s.kafka_bootstrap),
            ("prometheus", prom, prom.url),
        ):
            state = "ready" if comp.ready() else ("starting" if comp.running() else "down")
            ok = ok and state == "ready"
            print(f"{name:11} {state:8} {where}")
        return 0 if ok else 1
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import faust

    from streams.app import create_app, settle_garbage_collector

    class QuietWorker(faust.Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            # mode leaves the root logger at DEBUG and filters in the handler, so every
            # aiokafka and faust debug call built a log record (8 % of a catch-up run).
            super().on_setup_root_logger(logger, level)
            logger.setLevel(level)

    app = create_app(_settings())
    settle_garbage_collector()
    worker = QuietWorker(app, loglevel=args.loglevel)
    worker.execute_from_commandline()
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from streams.feeds import BadRow, Replayer, load_events
    from streams.partitioning import ReadingPacker

    s = _settings()
    bad: list[BadRow] = []
    events = load_events(args.files, on_error=args.on_error, bad_rows=bad)
    for row in bad:
        print(f"skipped {row}", file=sys.stderr)
    replayer = Replayer(
        s.kafka_bootstrap,
        s.topic("readings"),
        s.topic("incidents"),
        s.kafka_python_options(),
        ReadingPacker(s.partitions, args.pack) if args.pack else None,
    )
    try:
        with Progress() as progress:
            task = progress.add_task("replay", total=len(events))
            stats = replayer.replay(
                events, None if args.max else args.speed, lambda n: progress.advance(task, n)
            )
    finally:
        replayer.close()
    print(
        f"sent {stats.readings} readings and {stats.incidents} incidents "
        f"in {stats.seconds:.1f}s ({len(bad)} bad rows skipped)"
    )
    return 0


def cmd_playbooks(args: argparse.Namespace) -> int:
    from playbooks.errors import PlaybookError
    from playbooks.loader import load_playbooks, load_routing, playbook_errors

    s = _settings()
    if args.action == "check":
        directory = Path(args.dir or s.playbook_dir)
        errors: list[str] = []
        names = []
        for path in sorted(directory.glob("*.yaml")):
            playbook, errs = playbook_errors(path)
            errors += errs
            if playbook is not None:
                names.append(playbook.playbook)
        routing = Path(args.routing or s.routing_file)
        if not errors:
            try:
                load_routing(routing, load_playbooks(directory))
            except PlaybookError as exc:
                errors += str(exc).splitlines()
        for line in errors:
            print(line, file=sys.stderr)
        if errors:
            return 1
        print(f"{len(names)} playbooks and {routing.name} are valid: {', '.join(names)}")
        return 0
    # route-test: like amtool config routes test
    labels = {}
    for pair in args.labels:
        name, sep, value = pair.partition("=")
        if not sep:
            print(f"citybrain: label {pair!r} is not key=value", file=sys.stderr)
            return 2
        labels[name] = value
    router = load_routing(s.routing_file, load_playbooks(s.playbook_dir))
    for route in router.root.match(labels):
        print(
            f"route {route.id}: playbook {route.playbook}, group {route.group_key(labels)} "
            f"(group_by {list(route.group_by)}, group_wait {route.group_wait:g}s, "
            f"group_interval {route.group_interval:g}s, "
            f"repeat_interval {route.repeat_interval:g}s)"
        )
    return 0


def _api(
    args: argparse.Namespace, method: str, path: str, body: dict[str, object] | None = None
) -> int:
    import urllib.error
    import urllib.request

    token = args.token or os.environ.get("CITYBRAIN_API_TOKEN")
    if not token:
        print("citybrain: give --token or set CITYBRAIN_API_TOKEN", file=sys.stderr)
        return 2
    url = (args.url or f"http://127.0.0.1:{_settings().worker_port}") + "/api/v1" + path
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            print(json.dumps(json.load(resp), indent=2))
            return 0
    except urllib.error.HTTPError as exc:
        print(f"citybrain: HTTP {exc.code}: {exc.read().decode()}", file=sys.stderr)
        return 1


def cmd_runs(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _api(args, "GET", "/runs" + (f"?status={args.status}" if args.status else ""))
    if args.action == "show":
        return _api(args, "GET", f"/runs/{args.run_id}")
    if args.action == "answer":
        body = {"report_id": args.report, "satisfied": args.satisfied, "comment": args.comment}
        return _api(args, "POST", f"/runs/{args.run_id}/answer", body)
    return _api(args, "POST", f"/runs/{args.run_id}/{args.action}", {"note": args.note or ""})


def cmd_silences(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _api(args, "GET", "/silences")
    if args.action == "expire":
        return _api(args, "DELETE", f"/silences/{args.silence_id}")
    return _api(
        args,
        "POST",
        "/silences",
        {"matchers": args.matcher, "duration": args.duration, "reason": args.reason},
    )


def cmd_hash_token(args: argparse.Namespace) -> int:
    from streams.auth import hash_token

    print(hash_token(sys.stdin.readline().strip()))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from citybrain.demo import DEMO_DATA, run_demo

    data = args.data or [str(p) for p in DEMO_DATA]
    if args.grid:
        os.environ["CITYBRAIN_GRID_FILE"] = str(Path(args.grid).resolve())
    summary = run_demo(
        [Path(p) for p in data],
        ack_deadline=args.ack_deadline,
        summary_path=Path(args.summary) if args.summary else None,
        report_path=Path(args.report) if args.report else None,
    )
    return 0 if summary["alerts"] else 1


def cmd_report(args: argparse.Namespace) -> int:
    from citybrain.demo import write_report

    settings = _settings().model_copy(update={"topic_prefix": args.prefix})
    files = [Path(p) for p in args.data]
    write_report(
        settings,
        files,
        Path(args.out),
        args.title or f"citybrain what-if report: {', '.join(p.name for p in files)}",
    )
    print(f"report written to {args.out}")
    return 0


def _instant(text: str, flag: str) -> float:
    """``2024-05-26`` or an ISO 8601 time (UTC when no zone) -> epoch seconds."""
    from datetime import UTC, datetime

    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"{flag} is {text!r}, expected a date like 2024-05-26") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


class CliError(Exception):
    """Bad command-line input; printed without a traceback."""


def _read_records(path: Path) -> list[dict[str, object]]:
    """Step and audit records exported as JSON lines (one record a line) or a JSON list."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        loaded = json.loads(text)
        return [r for r in loaded if isinstance(r, dict)]
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CliError(f"{path}:{number}: not a JSON record: {exc.msg}") from None
        if isinstance(doc, dict):
            records.append(doc)
    return records


def write_campaign(report: dict[str, object], out: Path | None, title: str) -> None:
    """The report as JSON (``.json``), HTML (``.html``) or, without ``out``, JSON on stdout."""
    from citybrain.campaign import render_html

    if out is None:
        print(json.dumps(report, indent=2))
    elif out.suffix == ".html":
        out.write_text(render_html(report, title), encoding="utf-8")
    elif out.suffix == ".json":
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    else:
        raise CliError(f"--out is {str(out)!r}, expected a .html or .json file")


def cmd_campaign(args: argparse.Namespace) -> int:
    from citybrain.campaign import CampaignError, campaign_report
    from playbooks.loader import load_grid

    start, end = _instant(args.start, "--from"), _instant(args.end, "--to")
    settings = _settings()
    if args.prefix:
        settings = settings.model_copy(update={"topic_prefix": args.prefix})
    if args.input:
        records = _read_records(Path(args.input))
    else:
        from citybrain.demo import read_topic

        records = [
            json.loads(m.value)
            for role in ("steps", "audit")
            for m in read_topic(settings, settings.topic(role))
        ]
    grid = load_grid(Path(args.grid) if args.grid else settings.grid_file)
    try:
        report = campaign_report(records, {c: grid.path(c) for c in grid.cells}, start, end)
    except CampaignError as exc:
        raise CliError(str(exc)) from None
    out = Path(args.out) if args.out else None
    write_campaign(report, out, f"citybrain campaign report {args.start} to {args.end}")
    if out is not None:
        print(f"campaign report written to {out} ({len(report['rows'])} rows)")
    return 0


COMPARED = (
    "found",
    "resolved",
    "resolution_rate",
    "tta_median",
    "tta_p90",
    "ttr_median",
    "ttr_p90",
    "first_line_share",
    "escalated_district",
)


def _load_incidents(path: Path) -> list[Incident]:
    """Canonical incident CSV (docs/events.md); the department from a ``department``
    column when the file has one, else from the worker's own text classifier."""
    import pandas as pd

    from citybrain.rehearse import Incident
    from streams.departments import DepartmentClassifier

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise CliError(f"--incidents {path}: {exc}") from None
    needed = {"timestamp", "report_id", "category", "text", "source", "grid_cell"}
    missing = needed - set(frame.columns)
    if missing:
        raise CliError(f"--incidents {path}: missing column(s) {sorted(missing)}")
    ts = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce")
    if ts.isna().any():
        row = int(ts.isna().to_numpy().nonzero()[0][0])
        raise CliError(
            f'--incidents {path}: row {row + 1}: field "timestamp" is '
            f"{frame['timestamp'].iloc[row]!r}, expected an ISO 8601 time"
        )
    if "department" in frame.columns:
        departments = list(frame["department"])
    else:
        texts = list(frame["category"] + ": " + frame["text"])
        departments = DepartmentClassifier.from_training_file().predict(texts)
    epoch = (ts - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return [
        Incident(float(t), r, s, c, g, d)
        for t, r, s, c, g, d in zip(
            epoch,
            frame["report_id"],
            frame["source"],
            frame["category"],
            frame["grid_cell"],
            departments,
            strict=True,
        )
    ]


def cmd_rehearse(args: argparse.Namespace) -> int:
    import time

    import yaml

    from citybrain.campaign import campaign_report, render_html
    from citybrain.rehearse import (
        RehearsalError,
        profile_distributions,
        rehearse,
        units_profile,
    )
    from playbooks.loader import load_grid, load_playbook

    units_path = Path(args.units)
    try:
        doc = yaml.safe_load(units_path.read_text(encoding="utf-8"))
        tables = {}
        for key in ("response_profile", "resolve_profile"):
            profile = units_path.parent / str(doc.get(key, ""))
            tables[key] = profile_distributions(
                json.loads(profile.read_text(encoding="utf-8")), str(profile)
            )
        units = units_profile(doc, tables["response_profile"], tables["resolve_profile"])
    except (OSError, yaml.YAMLError, json.JSONDecodeError, AttributeError) as exc:
        raise CliError(f"--units {units_path}: {exc}") from None
    except RehearsalError as exc:
        raise CliError(f"--units {units_path}: {exc}") from None
    incidents = _load_incidents(Path(args.incidents))
    if not incidents:
        raise CliError(f"--incidents {args.incidents}: no reports")
    grid = load_grid(Path(args.grid) if args.grid else _settings().grid_file)
    unknown = sorted({i.grid_cell for i in incidents} - set(grid.cells))
    if unknown:
        raise CliError(f"--incidents: grid cell {unknown[0]!r} is not in the grid")
    playbook = load_playbook(Path(args.playbook))
    paths = {c: grid.path(c) for c in grid.cells}
    start = min(i.ts for i in incidents)
    end = max(i.ts for i in incidents) + 1.0
    versions = []
    for deadline in args.ack_deadline or [None]:
        began = time.perf_counter()
        result = rehearse(incidents, playbook, grid, units, deadline, seed=args.seed)
        report = campaign_report(result.records, paths, start, end, until=float("inf"))
        seconds = time.perf_counter() - began
        versions.append(
            {
                "ack_deadline": deadline,
                "seconds": round(seconds, 3),
                "queued": result.queued,
                "unanswered": result.unanswered,
                "report": report,
            }
        )
    _print_comparison(versions)
    if args.out:
        out = Path(args.out)
        if out.suffix == ".json":
            out.write_text(json.dumps({"versions": versions}, indent=2) + "\n", encoding="utf-8")
        elif out.suffix == ".html":
            out.write_text(
                "\n".join(
                    render_html(v["report"], f"rehearsal, ack deadline {v['ack_deadline']} s")
                    for v in versions
                ),
                encoding="utf-8",
            )
        else:
            raise CliError(f"--out is {str(out)!r}, expected a .html or .json file")
        print(f"rehearsal report written to {out}")
    return 0


def _print_comparison(versions: list[dict[str, Any]]) -> None:
    """City-level figures of each version side by side."""
    heads = [f"ack {v['ack_deadline'] or 'playbook'}" for v in versions]
    print(f"{'figure':22}" + "".join(f"{h:>16}" for h in heads))
    cities = [
        next((r for r in v["report"]["rows"] if r["scope"] == "city"), None) for v in versions
    ]
    for key in COMPARED:
        cells = []
        for city in cities:
            value = city["figures"][key] if city else None
            if value is None:
                cells.append("-")
            elif key.startswith(("tta", "ttr")):
                cells.append(f"{value / 60:.1f} min")
            elif key.endswith(("_rate", "_share")):
                cells.append(f"{100 * value:.1f} %")
            else:
                cells.append(f"{value:g}")
        print(f"{key:22}" + "".join(f"{c:>16}" for c in cells))
    print(f"{'seconds (wall)':22}" + "".join(f"{v['seconds']:>16}" for v in versions))


def _detector(name: str) -> Detector | None:
    """The named detector with its default parameters, or None after saying why."""
    from detectors import DETECTORS

    if name not in DETECTORS:
        print(f"citybrain: detector {name!r} is not one of {sorted(DETECTORS)}", file=sys.stderr)
        return None
    return DETECTORS[name]()


def cmd_detect(args: argparse.Namespace) -> int:
    from citybrain.detect import DetectInputError, detect_dir, detect_file

    prototype = _detector(args.detector)
    if prototype is None:
        return 2
    try:
        if args.input_dir:
            if not args.output_dir:
                print("citybrain: --input-dir needs --output-dir", file=sys.stderr)
                return 2
            rows = detect_dir(Path(args.input_dir), Path(args.output_dir), prototype)
        else:
            if not (args.input and args.output):
                print(
                    "citybrain: give --input and --output, or --input-dir and --output-dir",
                    file=sys.stderr,
                )
                return 2
            rows = detect_file(Path(args.input), Path(args.output), prototype)
    except DetectInputError as exc:
        print(f"citybrain: {exc}", file=sys.stderr)
        return 1
    print(f"scored {rows} rows with {args.detector}")
    return 0


def cmd_bench_nab(args: argparse.Namespace) -> int:
    from citybrain.nab import load_corpus, report

    prototype = _detector(args.detector)
    if prototype is None:
        return 2
    data = Path(args.data)
    if (data / "data").is_dir():  # the NAB root was given: its data/ and labels/
        data = data / "data"
    labels = Path(args.labels) if args.labels else data.parent / "labels" / "combined_windows.json"
    for option, path in (("--data", data), ("--labels", labels)):
        if not path.exists():
            print(
                f"citybrain: {option} {str(path)!r} does not exist (expected NAB's layout: "
                "data/<category>/<file>.csv and labels/combined_windows.json)",
                file=sys.stderr,
            )
            return 2
    cases = load_corpus(data, labels, lambda t, v: prototype.clone().score_many(v, t))
    result = {"detector": args.detector, **report(cases)}
    print(json.dumps(result, indent=2))
    return 0


def cmd_dashboards(args: argparse.Namespace) -> int:
    from dashboards.generate import generate

    if args.action == "generate":
        for path in generate(Path(args.out)):
            print(f"wrote {path}")
        return 0
    from dashboards.push import DashboardPusher, PushError

    token = args.token or os.environ.get("CITYBRAIN_GRAFANA_TOKEN")
    if not token:
        print("citybrain: give --token or set CITYBRAIN_GRAFANA_TOKEN", file=sys.stderr)
        return 2
    prometheus = args.prometheus_url or f"http://127.0.0.1:{_settings().prometheus_port}"
    try:
        report = DashboardPusher(args.url, token, prometheus).push(Path(args.generated))
    except PushError as exc:
        print(f"citybrain: {exc}", file=sys.stderr)
        return 1
    for verb, items in (
        ("created", report.created),
        ("updated", report.updated),
        ("unchanged", report.unchanged),
    ):
        for item in items:
            print(f"{verb:9} {item}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from citybrain.adapters import build

    for name, rows in build(Path(args.shared), Path(args.out)).items():
        print(f"{name}: {rows} rows")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="citybrain", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("stack", help="start, stop or check the local Kafka and Prometheus")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--wipe", action="store_true", help="with down: delete Kafka's data")
    p.set_defaults(func=cmd_stack)

    p = sub.add_parser("worker", help="run a stream-processing worker (faust)")
    p.add_argument("--loglevel", default="info")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("replay", help="publish canonical CSVs to Kafka in event-time order")
    p.add_argument("files", nargs="+")
    speed = p.add_mutually_exclusive_group()
    speed.add_argument("--speed", type=float, default=60.0, help="N x real time (default 60)")
    speed.add_argument("--max", action="store_true", help="as fast as possible")
    p.add_argument(
        "--on-error",
        choices=["stop", "skip"],
        default="stop",
        help="a bad row stops the replay (default) or is skipped and reported",
    )
    p.add_argument(
        "--pack",
        type=int,
        metavar="N",
        help="send readings as readings/1 packs of up to N, as an edge gateway does",
    )
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("playbooks", help="check playbooks, test routing")
    psub = p.add_subparsers(dest="action", required=True)
    c = psub.add_parser("check", help="validate playbooks and routing: file, line, reason")
    c.add_argument("dir", nargs="?", help="playbook directory (default: the library)")
    c.add_argument("--routing", help="routing file (default: the library's)")
    c.set_defaults(func=cmd_playbooks)
    r = psub.add_parser("route-test", help="which route and playbook an alert would take")
    r.add_argument("labels", nargs="+", help="alert labels as key=value")
    r.set_defaults(func=cmd_playbooks)

    def api_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--url", help="worker URL (default http://127.0.0.1:WORKER_PORT)")
        parser.add_argument("--token", help="API token (default $CITYBRAIN_API_TOKEN)")

    p = sub.add_parser("runs", help="playbook runs through the operator API")
    rsub = p.add_subparsers(dest="action", required=True)
    lst = rsub.add_parser("list")
    lst.add_argument("--status")
    api_options(lst)
    lst.set_defaults(func=cmd_runs)
    for action in ("show", "ack", "resolve", "escalate", "cancel", "approve", "reject"):
        a = rsub.add_parser(action)
        a.add_argument("run_id")
        a.add_argument("--note", help="why (required for resolve and cancel)")
        api_options(a)
        a.set_defaults(func=cmd_runs)
    a = rsub.add_parser("answer", help="relay a reporter's answer to a closure message")
    a.add_argument("run_id")
    a.add_argument("--report", required=True, help="the report id of the closure")
    verdict = a.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--satisfied", dest="satisfied", action="store_true")
    verdict.add_argument("--unsatisfied", dest="satisfied", action="store_false")
    a.add_argument("--comment", default="")
    api_options(a)
    a.set_defaults(func=cmd_runs)

    p = sub.add_parser("silences", help="silences through the operator API")
    ssub = p.add_subparsers(dest="action", required=True)
    lst = ssub.add_parser("list")
    api_options(lst)
    lst.set_defaults(func=cmd_silences)
    add = ssub.add_parser("add")
    add.add_argument("--matcher", action="append", required=True, help='e.g. kind="pm25"')
    add.add_argument("--duration", required=True, help="e.g. 2h")
    add.add_argument("--reason", required=True)
    api_options(add)
    add.set_defaults(func=cmd_silences)
    exp = ssub.add_parser("expire")
    exp.add_argument("silence_id")
    api_options(exp)
    exp.set_defaults(func=cmd_silences)

    p = sub.add_parser("hash-token", help="print the SHA-256 of a token read from stdin")
    p.set_defaults(func=cmd_hash_token)

    p = sub.add_parser("demo", help="the whole loop on real data: stack, worker, replay, summary")
    p.add_argument("--data", nargs="+", help="canonical CSVs (default: datasets/*.csv.gz)")
    p.add_argument("--grid", help="grid file (default: datasets/grid.yaml)")
    p.add_argument("--summary", help="write the summary as JSON here")
    p.add_argument("--report", help="write a what-if report (self-contained HTML) here")
    p.add_argument(
        "--ack-deadline",
        type=float,
        default=5.0,
        help="seconds each wait_ack waits in the demo (default 5)",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("report", help="what-if report (HTML) of a finished replay")
    p.add_argument("--prefix", required=True, help="the replay's topic prefix (demo summary)")
    p.add_argument("--data", nargs="+", required=True, help="the replayed canonical CSVs")
    p.add_argument("--out", required=True)
    p.add_argument("--title")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("campaign", help="campaign reports from the steps and audit records")
    csub = p.add_subparsers(dest="action", required=True)
    c = csub.add_parser("report", help="per area and department: found, resolved, MTTA/MTTR...")
    c.add_argument("--from", dest="start", required=True, help="first day (or ISO time), UTC")
    c.add_argument("--to", dest="end", required=True, help="end, exclusive (date or ISO time)")
    c.add_argument("--out", help="report.html or report.json (default: JSON on stdout)")
    c.add_argument("--input", help="exported step/audit records (JSON lines); default: topics")
    c.add_argument("--prefix", help="topic prefix to read (default: CITYBRAIN_TOPIC_PREFIX)")
    c.add_argument("--grid", help="grid file (default: CITYBRAIN_GRID_FILE)")
    c.set_defaults(func=cmd_campaign)

    p = sub.add_parser("rehearse", help="replay real reports with simulated field units")
    p.add_argument("--incidents", required=True, help="canonical incident CSV")
    p.add_argument("--units", required=True, help="units profile YAML (datasets/service_times)")
    p.add_argument(
        "--ack-deadline",
        type=float,
        action="append",
        help="seconds every wait_ack waits; repeat to compare versions side by side",
    )
    p.add_argument(
        "--playbook",
        default=str(REPO_ROOT / "playbooks" / "library" / "rehearsal" / "citizen-report.yaml"),
    )
    p.add_argument("--grid", help="grid file (default: CITYBRAIN_GRID_FILE)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="report.html or report.json")
    p.set_defaults(func=cmd_rehearse)

    p = sub.add_parser("detect", help="score timestamp,value CSVs with a detector")
    p.add_argument("--input")
    p.add_argument("--output")
    p.add_argument("--input-dir")
    p.add_argument("--output-dir")
    p.add_argument("--detector", default=DEFAULT_DETECTOR, help=f"default {DEFAULT_DETECTOR}")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("bench", help="benchmarks that score detectors")
    bsub = p.add_subparsers(dest="action", required=True)
    nab = bsub.add_parser("nab", help="score a detector on a NAB-layout corpus")
    nab.add_argument("--data", required=True, help="NAB's root or its data/ directory")
    nab.add_argument("--labels", help="combined_windows.json (default: ../labels/)")
    nab.add_argument("--detector", default=DEFAULT_DETECTOR, help=f"default {DEFAULT_DETECTOR}")
    nab.set_defaults(func=cmd_bench_nab)

    p = sub.add_parser("dashboards", help="Grafana dashboards and provisioning")
    dsub = p.add_subparsers(dest="action", required=True)
    g = dsub.add_parser("generate", help="write dashboards and provisioning files")
    g.add_argument("--out", default=str(REPO_ROOT / "dashboards" / "generated"))
    g.set_defaults(func=cmd_dashboards)
    push = dsub.add_parser("push", help="upsert folder, datasource and dashboards into Grafana")
    push.add_argument("--url", required=True, help="Grafana base URL")
    push.add_argument("--token", help="service-account token (default $CITYBRAIN_GRAFANA_TOKEN)")
    push.add_argument("--prometheus-url", help="the datasource URL as Grafana reaches it")
    push.add_argument("--generated", default=str(REPO_ROOT / "dashboards" / "generated"))
    push.set_defaults(func=cmd_dashboards)

    p = sub.add_parser("datasets", help="rebuild the committed data slices")
    dsub = p.add_subparsers(dest="action", required=True)
    b = dsub.add_parser("build", help="convert ../shared/data/city into datasets/")
    b.add_argument("--shared", default=str(REPO_ROOT.parent / "shared" / "data" / "city"))
    b.add_argument("--out", default=str(REPO_ROOT / "datasets"))
    b.set_defaults(func=cmd_datasets)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "worker":
        # faust's Worker parses sys.argv itself; hand it only the program name.
        sys.argv = sys.argv[:1]
    try:
        return int(args.func(args))
    except Exception as exc:
        from citybrain.stack.process import StackError
        from playbooks.errors import PlaybookError
        from streams.errors import StreamsError

        if isinstance(exc, StackError | PlaybookError | StreamsError | CliError):
            print(f"citybrain: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())

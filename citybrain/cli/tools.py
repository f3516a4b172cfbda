"""``bench nab``, ``dashboards`` and ``datasets``."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from citybrain.cli.api import check_bearer, check_url
from citybrain.cli.base import (
    EXIT_FAILED,
    EXIT_SERVICE,
    CliError,
    _connection_error,
    _need_dir,
    _need_file,
    _settings,
    check_output,
    check_output_dir,
    said,
    write_error,
)
from citybrain.cli.detect import _detector
from citybrain.commands import (
    written_path,
)
from citybrain.text import agreeing, counted
from streams.settings import REPO_ROOT, Settings

if TYPE_CHECKING:
    from dashboards.push import PushReport


def cmd_bench_nab(args: argparse.Namespace) -> int:
    from citybrain.errors import InputError
    from citybrain.nab import load_corpus, report

    prototype = _detector(args.detector)
    data = Path(args.data)
    from streams.inputs import is_dir

    if is_dir(data / "data"):  # the NAB root was given: its data/ and labels/
        data = data / "data"
    labels = Path(args.labels) if args.labels else data.parent / "labels" / "combined_windows.json"
    layout = "NAB's layout: data/<category>/<file>.csv and labels/combined_windows.json"
    # A file as --data was taken for a root whose labels were missing (trial 20).
    _need_dir(data, "--data", f"give NAB's root or its data/ directory ({layout})", f"({layout})")
    _need_file(labels, "--labels", kind="JSON", missing=f"(expected {layout})", expects=("labels",))
    unmatched: list[str] = []
    try:
        cases = load_corpus(
            data, labels, lambda t, v: prototype.clone().score_many(v, t), unmatched
        )
    except InputError as exc:  # DetectInputError (the CSVs), and the labels' faults
        # Led by the option that named the file, as every command's file faults are (t158:
        # `bench nab --labels l.json` said only `l.json:1: byte 0xff is not UTF-8`).
        message = str(exc)
        if args.labels and message.startswith(f"{labels}:"):
            message = f"--labels {message}"
        elif message.startswith(f"{data}/"):
            message = f"--data {message}"
        raise CliError(message) from None
    if unmatched:
        shown = ", ".join(unmatched[:3]) + (
            f" and {len(unmatched) - 3:,} more" if len(unmatched) > 3 else ""
        )
        print(
            f"citybrain: warning: --labels {str(labels)!r} labels "
            f"{counted(len(unmatched), 'file')} not under --data {str(data)!r}, whose "
            f"windows count nowhere: {shown}",
            file=sys.stderr,
        )
    # The score at the fixed threshold the stream alerts at with this detector, beside
    # the optimised one; as `detect` counts (trial 20: only tail got one, though the
    # help promised it for every detector).
    from detectors import default_threshold

    threshold = args.threshold
    if threshold is None:
        threshold = default_threshold(args.detector)
    result = {"detector": args.detector, "threshold": threshold, **report(cases, threshold)}
    print(json.dumps(result, indent=2))
    return 0


def cmd_dashboards(args: argparse.Namespace) -> int:
    from dashboards.generate import generate

    if args.action == "generate":
        check_output_dir("--out", args.out)
        written: list[Path] = []
        try:
            generate(Path(args.out), written)
        except OSError as exc:
            # t83: stopped half-way, it named only the failure; the files it had written
            # (the rest left as they were) are listed, as a finished run lists them.
            for path in written:
                print(f"wrote {written_path(path)}")
            error = write_error("--out", args.out, exc)
            if written:
                error.message += (
                    f"; stopped there: {counted(len(written), 'file')} before it "
                    f"{agreeing(len(written), 'was', 'were')} written (listed on stdout), the "
                    "rest left as they were"
                )
            raise error from None
        for path in written:
            print(f"wrote {written_path(path)}")
        return 0
    from dashboards.push import (
        GRAFANA_PORT,
        DashboardPusher,
        GeneratedError,
        PushError,
        PushReport,
        generated_dashboards,
    )

    # As the token, the URL may come from the settings the worker's annotations use
    # (t168: with CITYBRAIN_GRAFANA_URL and _TOKEN set, as docs/control-room.md says for
    # annotations, `dashboards push` without --url was "the following arguments are
    # required: --url").
    url_from = "--url" if args.url is not None else "CITYBRAIN_GRAFANA_URL"
    url = args.url if args.url is not None else os.environ.get("CITYBRAIN_GRAFANA_URL")
    if url is None:
        raise CliError(
            "no Grafana URL: give --url (Grafana's own address, e.g. "
            f"http://127.0.0.1:{GRAFANA_PORT}) or set CITYBRAIN_GRAFANA_URL"
        )
    url = check_url(url_from, url, GRAFANA_PORT) or url
    # The default port as the example: the settings are read only when no --prometheus-url
    # is given (a malformed one, unused then, must not stop the push).
    default_prometheus = Settings.model_fields["prometheus_port"].default
    check_url("--prometheus-url", args.prometheus_url, default_prometheus)
    token = args.token or os.environ.get("CITYBRAIN_GRAFANA_TOKEN")
    if not token:
        raise CliError("no Grafana token: give --token or set CITYBRAIN_GRAFANA_TOKEN")
    check_bearer(token, "--token" if args.token else "CITYBRAIN_GRAFANA_TOKEN")
    _need_dir(Path(args.generated), "--generated")
    prometheus = args.prometheus_url or f"http://127.0.0.1:{_settings().prometheus_port}"
    if not re.fullmatch(r"[1-9][0-9]*(ms|s|m|h)", args.scrape_interval):
        raise CliError(
            f"--scrape-interval is {args.scrape_interval!r}, expected a Prometheus duration "
            "such as 5s, 15s or 1m (the interval that Prometheus scrapes the workers at)"
        )
    try:
        # Read before Grafana is asked: a folder with none, or a broken file, pushed the
        # folder and datasource first (t147).
        dashboards = generated_dashboards(Path(args.generated))
    except GeneratedError as exc:
        raise CliError(str(exc)) from None
    # Filled as each object is pushed: a push that fails half-way still lists what it
    # did (t83: it printed only the failure, so which dashboards Grafana had was unsaid).
    report = PushReport()
    try:
        pusher = DashboardPusher(
            url,
            token,
            prometheus,
            scrape_interval=args.scrape_interval,
            url_from=url_from,
            token_from="--token" if args.token else "CITYBRAIN_GRAFANA_TOKEN",
        )
        pusher.push(Path(args.generated), report, dashboards)
    except PushError as exc:
        _print_push_report(report)
        # Refused (4xx) is the answer no, 1; a Grafana that kept failing (5xx, timeouts)
        # did not serve the push, 3, as one that does not answer at all.
        raise CliError(
            f"{exc}{_pushed_before(report)}", EXIT_SERVICE if exc.unavailable else EXIT_FAILED
        ) from None
    except Exception as exc:
        refused = _connection_error(exc)
        if refused is None:
            raise
        _print_push_report(report)
        raise CliError(
            f"cannot reach Grafana at {url} ({said(refused)}): check {url_from} and that Grafana "
            f"runs{_pushed_before(report)}",
            EXIT_SERVICE,
        ) from None
    _print_push_report(report)
    return 0


def _print_push_report(report: PushReport) -> None:
    """One stdout line per object pushed: ``created``, ``updated`` or ``unchanged``."""
    for verb, items in (
        ("created", report.created),
        ("updated", report.updated),
        ("unchanged", report.unchanged),
    ):
        for item in items:
            print(f"{verb:9} {item}", flush=True)


def _pushed_before(report: PushReport) -> str:
    """The tail of a failed push's message: how much was done before it stopped (listed
    on stdout) and that the rest was not pushed; "" when nothing was."""
    done = len(report.created) + len(report.updated) + len(report.unchanged)
    if not done:
        return ""
    return (
        f"; the push stopped there: {counted(done, 'object')} before it "
        f"{agreeing(done, 'was', 'were')} pushed (listed on stdout), "
        "the rest were not; run it again once that is fixed (objects already pushed are left "
        "unchanged)"
    )


def cmd_datasets(args: argparse.Namespace) -> int:
    from citybrain.adapters import build

    # t79: from a clone without the team's shared folder beside it, the default alone
    # said "no such directory" and nothing of what the folder is or holds.
    _need_dir(
        Path(args.shared),
        "--shared",
        missing="(the team's shared city data, by default ../shared/data/city beside the "
        f"checkout; give --shared DIR: {REPO_ROOT / 'datasets' / 'README.md'} lists each "
        "source file and where it comes from)",
    )
    check_output_dir("--out", args.out)
    check_output("--out", args.out, [("--shared", args.shared)], folder_must_exist=False)
    from citybrain.adapters import SOURCES, missing_sources

    missing = missing_sources(Path(args.shared))
    if missing:
        raise CliError(
            f"--shared {args.shared!r} lacks {len(missing)} of the {len(SOURCES)} sources the "
            f"slices are built from: {', '.join(missing)} (nothing was read or written; "
            f"{REPO_ROOT / 'datasets' / 'README.md'} lists each source file and where it "
            "comes from)"
        )
    try:
        built = build(Path(args.shared), Path(args.out))
    except OSError as exc:
        if exc.filename is None or not str(exc.filename).startswith(args.out):
            raise  # reading --shared: the boundary names the file
        raise write_error("--out", args.out, exc) from None
    for name, rows in built.items():
        print(f"{name}: {rows} rows")
    return 0

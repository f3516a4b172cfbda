"""The ``citybrain`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from streams.settings import REPO_ROOT, Settings


def _settings() -> Settings:
    return Settings()


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

    from streams.app import create_app

    app = create_app(_settings())
    worker = faust.Worker(app, loglevel=args.loglevel)
    worker.execute_from_commandline()
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from streams.feeds import BadRow, Replayer, load_events

    s = _settings()
    bad: list[BadRow] = []
    events = load_events(args.files, on_error=args.on_error, bad_rows=bad)
    for row in bad:
        print(f"skipped {row}", file=sys.stderr)
    replayer = Replayer(s.kafka_bootstrap, s.topic("readings"), s.topic("incidents"))
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


def cmd_ack(args: argparse.Namespace) -> int:
    from kafka import KafkaProducer

    s = _settings()
    producer = KafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all")
    body = json.dumps({"alert_id": args.alert_id, "by": args.by}).encode()
    producer.send(s.topic("acks"), key=args.alert_id.encode(), value=body)
    producer.flush()
    producer.close()
    print(f"acknowledgement for {args.alert_id} sent")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from citybrain.demo import run_demo

    data = args.data or sorted(str(p) for p in (REPO_ROOT / "datasets").glob("*.csv.gz"))
    if args.grid:
        os.environ["CITYBRAIN_GRID_FILE"] = str(Path(args.grid).resolve())
    summary = run_demo(
        [Path(p) for p in data],
        ack_deadline=args.ack_deadline,
        summary_path=Path(args.summary) if args.summary else None,
    )
    return 0 if summary["alerts"] else 1


def cmd_dashboards(args: argparse.Namespace) -> int:
    from dashboards.generate import generate

    for path in generate(Path(args.out)):
        print(f"wrote {path}")
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
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("ack", help="acknowledge an alert's playbook run")
    p.add_argument("alert_id")
    p.add_argument("--by", required=True, help="who acknowledges (unit or operator)")
    p.set_defaults(func=cmd_ack)

    p = sub.add_parser("demo", help="the whole loop on real data: stack, worker, replay, summary")
    p.add_argument("--data", nargs="+", help="canonical CSVs (default: datasets/*.csv.gz)")
    p.add_argument("--grid", help="grid file (default: datasets/grid.yaml)")
    p.add_argument("--summary", help="write the summary as JSON here")
    p.add_argument(
        "--ack-deadline",
        type=float,
        default=5.0,
        help="seconds each wait_ack waits in the demo (default 5)",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("dashboards", help="Grafana dashboards and provisioning")
    dsub = p.add_subparsers(dest="action", required=True)
    g = dsub.add_parser("generate", help="write dashboards and provisioning files")
    g.add_argument("--out", default=str(REPO_ROOT / "dashboards" / "generated"))
    g.set_defaults(func=cmd_dashboards)

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

        if isinstance(exc, StackError | PlaybookError | StreamsError):
            print(f"citybrain: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())

"""``detect``: one series scored offline by a detector."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from citybrain.commands import written_path
from citybrain.text import agreeing, cell, counted
from detectors import DEFAULT_THRESHOLD
from playbooks.errors import did_you_mean

if TYPE_CHECKING:
    from citybrain.detect import Scored
    from detectors import Detector

from citybrain.cli.base import (
    EXIT_INTERRUPTED,
    CliError,
    _check_output_dir,
    _need_dir,
    _need_file,
    _settings,
    check_output,
    usage_error,
)
from citybrain.cli.feeds import _row_fault


def _detector(name: str) -> Detector:
    """The named detector with its default parameters (argparse has checked the name;
    CliError for a caller that did not)."""
    from detectors import DETECTORS

    if name not in DETECTORS:
        raise CliError(
            f"--detector is {name!r}, expected one of {', '.join(sorted(DETECTORS))}"
            f"{did_you_mean(name, DETECTORS)}"
        )
    return DETECTORS[name]()


def cmd_detect(args: argparse.Namespace) -> int:
    from citybrain.detect import (
        DetectInputError,
        detect_dir,
        detect_file,
        input_files,
        warmup_rows,
    )

    prototype = _detector(args.detector)
    # Rows are counted at the threshold the stream would alert at with this detector.
    settings = _settings()
    threshold = settings.alert_threshold(args.detector)
    skipped: list[str] = []
    skipped_files: list[str] = []
    written: list[Path] = []
    on_bad_row = skipped.append if args.on_error == "skip" else None
    on_bad_file = skipped_files.append if args.on_error == "skip" else None

    def warn(message: str) -> None:
        # A file under --input-dir may hold anything in its name: shown escaped (t169).
        print(f"citybrain: warning: {cell(message)}", file=sys.stderr)

    try:
        if args.input_dir:
            if not args.output_dir:
                raise usage_error("detect", "--input-dir needs --output-dir (where the scores go)")
            source = Path(args.input_dir)
            _need_dir(source, "--input-dir", "give --input FILE --output FILE for one file")
            _check_output_dir("--output-dir", args.output_dir, "--input-dir", source)
            try:
                files = input_files(source)
            except DetectInputError as exc:
                raise CliError(f"--input-dir {str(source)!r}: {exc}") from None
            if not files:
                raise CliError(f"--input-dir {str(source)!r}: no .csv or .csv.gz files under it")
            scored = detect_dir(
                source,
                Path(args.output_dir),
                prototype,
                on_bad_row,
                warn,
                written,
                threshold,
                args.detector,
                on_bad_file,
            )
        else:
            if args.input and not args.output:
                raise usage_error(
                    "detect", "--input needs --output (where the scores go: a .csv file, or -)"
                )
            if args.output and not args.input:
                raise usage_error("detect", "--output needs --input (the CSV to score)")
            if args.output_dir:
                raise usage_error(
                    "detect", "--output-dir needs --input-dir (the folder of CSVs to score)"
                )
            if not args.input:
                raise usage_error(
                    "detect", "give --input FILE --output FILE, or --input-dir DIR --output-dir DIR"
                )
            if args.input == "-":
                raise CliError(
                    "--input is '-': detect reads a file, not standard input (it checks "
                    "every row before scoring any); save it to a file and give that"
                )
            source = Path(args.input)
            _need_file(
                source,
                "--input",
                f"to score every CSV under it give --input-dir {source} --output-dir DIR",
                kind="CSV",
                # A feed gets its own message later: the replay command that streams it.
                expects=("series", "feed"),
            )
            if args.output != "-":
                check_output("--output", args.output, [("--input", args.input)], suffixes=(".csv",))
            # `--output -`: the scores on stdout, so the summary goes to stderr.
            to_stdout = args.output == "-"
            scored = detect_file(
                source,
                sys.stdout if to_stdout else Path(args.output),
                prototype,
                on_bad_row,
                warn,
                threshold,
                args.detector,
            )
    except DetectInputError as exc:
        # A bad input file is bad input (exit 2), like a bad command line.
        if args.input_dir:
            total = len(files)
            done = (
                f"; {len(written):,} of {counted(total, 'file')} "
                f"{agreeing(len(written), 'was', 'were')} scored into "
                f"{written_path(args.output_dir)} before it (the last: {written[-1].name})"
                if written
                else f"; none of the {total:,} files was scored"
            )
        else:
            done = "" if args.output == "-" else f"; nothing was written to {args.output}"
        # In a folder a file that cannot be scored at all is skipped whole as well.
        skip = ", or give --on-error skip" if _row_fault(str(exc)) or args.input_dir else ""
        raise CliError(f"{exc}{done}: fix the file{skip}") from None
    except KeyboardInterrupt:
        raise CliError(_detect_interrupted(args, written), EXIT_INTERRUPTED) from None
    finally:
        for row in skipped:
            print(f"skipped {cell(row)}", file=sys.stderr)
        for whole in skipped_files:
            print(f"skipped the whole file: {cell(whole)}", file=sys.stderr)
    if args.input_dir and len(skipped_files) == len(files):
        # As for one file whose every row was bad (exit 2, "no data rows"): t68's walk,
        # `detect --input-dir datasets --on-error skip` scored nothing and said done (0).
        raise CliError(
            f"--input-dir {str(source)!r}: none of its {counted(len(files), 'file')} could be "
            f"scored (each skipped whole, above); nothing was written to {args.output_dir}: "
            "give files of timestamp,value rows"
        )
    summary = detect_summary(
        args.detector,
        scored,
        len(skipped),
        warmup_rows(prototype),
        threshold,
        settings.threshold_is_set,
        settings.detector,
    )
    if skipped_files:
        summary += (
            f"; skipped {counted(len(skipped_files), 'file')} that could not be scored at all "
            "(listed above; no output for them)"
        )
    print(summary, file=sys.stderr if args.output == "-" and not args.input_dir else sys.stdout)
    return 0


def _detect_interrupted(args: argparse.Namespace, written: list[Path]) -> str:
    """What an interrupted ``detect`` leaves (new-user walk, t17: it said only
    "interrupted", over a truncated output file): each output file is written whole or
    not at all, so the message names those finished and says the rest are as they were."""
    if not args.input_dir:
        if args.output == "-":
            return "interrupted: the scores written to stdout so far are only the first rows"
        return (
            f"interrupted: nothing was written to {args.output} (it is as it was before); "
            "run the command again to score the file"
        )
    if not written:
        return (
            f"interrupted: no file was scored into {args.output_dir} (every output there "
            "is as it was before); run the command again to score them"
        )
    return (
        f"interrupted: {counted(len(written), 'file')} "
        f"{agreeing(len(written), 'was', 'were')} scored into {written_path(args.output_dir)} "
        f"(the last: {written[-1].name}); the one being scored and those after it were not "
        "written; run the command again to score them"
    )


def detect_summary(
    detector: str,
    scored: Scored,
    skipped: int,
    warmup: int | None,
    threshold: float = DEFAULT_THRESHOLD,
    threshold_given: bool = False,
    stream_detector: str | None = None,
) -> str:
    """detect's last line: rows read = scored + skipped; the warm-up (declared, or as
    seen when the detector declares none) and how many rows reached ``threshold``, the
    one the stream alerts at with this detector, saying whose it is: the detector's own,
    or CITYBRAIN_SCORE_THRESHOLD's (``threshold_given``), which the stream applies to its
    own detector (``stream_detector``, CITYBRAIN_DETECTOR) when that is another one."""
    from detectors import DEFAULT_DETECTOR, OWN_THRESHOLDS, default_threshold

    runs = f"; the stream runs {stream_detector}" if stream_detector not in (None, detector) else ""
    if not threshold_given and (detector in OWN_THRESHOLDS or detector == DEFAULT_DETECTOR):
        at = "would alert at running it" if runs else "alerts at with it"
        whose = f"({detector}'s threshold, the one the stream {at}{runs})"
    elif not threshold_given:
        # The shared default is calibrated on tail's probabilities; this detector's
        # scores have a scale of their own (a flat series can score 0.8 throughout).
        whose = (
            f"({DEFAULT_DETECTOR}'s calibrated threshold, the default of every detector "
            f"without its own; {detector}'s scores have their own scale, so this is no "
            f"alert rate for it{runs})"
        )
    elif stream_detector in (None, detector):
        whose = "(CITYBRAIN_SCORE_THRESHOLD, the stream's alert threshold)"
    else:
        whose = (
            f"(CITYBRAIN_SCORE_THRESHOLD, which the stream applies to its detector "
            f"{stream_detector}; {detector}'s own threshold is {default_threshold(detector):g})"
        )
    from citybrain.detect import _MEASURED, ALTERNATIVE, EXTREME_SPREADS, rows_to_reach
    from detectors.base import ABSURD_ABOVE

    if warmup is not None:
        each = "" if scored.series == 1 else " of each series"
        # Every detector with a fixed warm-up scores a far glitch 1 in it all the same.
        learning = (
            f"the first {warmup:,} rows{each} are warm-up, scored 0 (a far glitch, such as "
            "a 1e308 sentinel, scores 1 all the same)"
        )
        # The warm-up is not the whole story: tail caps a score by how little it has seen,
        # so a reading right after it cannot reach the threshold (trial 9's 6x spike at
        # row 45 scored 0.197). Measured, not declared (citybrain.detect.rows_to_reach).
        need = rows_to_reach(detector, threshold) if detector in _MEASURED else None
        if need is not None and need > warmup:
            learning += (
                f", and before row {need + 1:,} only a reading more than "
                f"{EXTREME_SPREADS:g} standard deviations out reaches {threshold:g} (--detector "
                f"{ALTERNATIVE} can sooner)"
            )
    else:
        zeros = counted(scored.leading_zeros, "row")
        # (A far glitch scores 1 in warm-up too: it does not end the warm-up as seen.)
        but = (
            f" but {counted(scored.leading_far, 'far glitch', 'far glitches')} (scored 1)"
            if scored.leading_far
            else ""
        )
        learning = f"{detector} declares no fixed warm-up; " + (
            f"here the first {zeros}{but} scored 0"
            if scored.series == 1
            else f"here at most the first {zeros} of a series{but} scored 0"
        )
    order = scored.order
    unordered = [
        f"{counted(order.repeated, 'row')} at the previous row's time (the stream drops "
        "these as duplicates)"
        if order.repeated
        else "",
        f"{counted(order.earlier, 'row')} before it by up to an hour (the stream "
        "dead-letters these, out_of_order)"
        if order.earlier
        else "",
    ]
    jumped = (
        f"{counted(order.jumps_back, 'row')} more than a day ahead of the row before "
        "(or of the next, the first row), whose next row went back behind it (an odd "
        "time? the rows after it are scored "
        "from the time they went back to, as the stream takes them); "
        if order.jumps_back
        else ""
    )
    said = "; ".join(u for u in unordered if u)
    return (
        f"read {counted(scored.rows + skipped, 'row')}: scored {scored.rows:,} with {detector}, "
        f"skipped {counted(skipped, 'bad row')}; {learning}; "
        + (f"scored though the stream would not: {said}; " if said else "")
        + jumped
        + f"{counted(scored.flagged, 'row')} scored at or above {threshold:g} {whose}"
        + (
            f", {scored.far_flagged:,} of them far glitches (scored 1: a reading further "
            "from its series' level than a million times its spread and size, or beyond "
            f"{ABSURD_ABOVE:.1e}, which no measurement reaches: a sentinel or a unit mistake?)"
            if scored.far_flagged
            else ""
        )
    )

"""Campaign: the campaign report's figures live (citybrain.campaign, docs/citizens.md):
resolution rate, solved at the first line, satisfaction, reopened, MTTA and MTTR by
department, runs closed by grid level."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards.panels import quantiles, query, series, single
from streams import metrics as m

UID = "citybrain-campaign"
WINDOW = "24h"


def _share(part: str, whole: str) -> str:
    # clamp_min keeps an idle city at 0 instead of a division by zero (no data).
    return f"{_sum(part)} / clamp_min({_sum(whole)}, 1)"


def _sum(series: str) -> str:
    """The increase over the window, summed; ``a - b`` for a count net of another, never
    below 0 (a reopening in the window of a resolution from before it read -100 %)."""
    if " - " in series:
        plus, minus = series.split(" - ")
        return f"clamp_min({_sum(plus)} - {_sum(minus)}, 0)"
    return f"sum(increase({series}[{WINDOW}]))"


def build() -> Dashboard:
    # Net of the reopenings that undid a resolution: each run counts once, resolved if
    # its last outcome is (the campaign report's rule); counted at each closing, a run
    # resolved, reopened and resolved again made the rate 2/1 (trial 22).
    first = 'level=~"community|street"'
    undone = f'{m.CAMPAIGN_REOPENED}{{outcome="resolved"}}'
    resolved = f'{m.CAMPAIGN_RUNS_CLOSED}{{outcome="resolved"}} - {undone}'
    first_line = (
        f'{m.CAMPAIGN_RUNS_CLOSED}{{outcome="resolved",{first}}} - '
        f'{m.CAMPAIGN_REOPENED}{{outcome="resolved",{first}}}'
    )
    closed = f'{m.CAMPAIGN_RUNS_CLOSED}{{outcome="resolved"}}'
    return (
        Dashboard("citybrain / Campaign")
        .uid(UID)
        .tags(["citybrain", "generated"])
        .refresh("1m")
        .time("now-7d", "now")
        .with_panel(
            single(
                "Resolution rate (24h)",
                "percentunit",
                query(_share(resolved, m.RUNS)),
                description="Resolutions net of the reopenings that undid one / runs started "
                "in the last 24 hours (a run resolved, reopened and resolved again counts once)",
            )
        )
        .with_panel(
            single(
                "Solved at the first line (24h)",
                "percentunit",
                query(_share(first_line, resolved)),
                description="Resolved at community or street level / resolved, each net of "
                "the reopenings that undid a resolution at that level",
            )
        )
        .with_panel(
            single(
                "Reporters satisfied (24h)",
                "percentunit",
                query(_share(f'{m.CAMPAIGN_ANSWERS}{{satisfied="true"}}', m.CAMPAIGN_ANSWERS)),
            )
        )
        .with_panel(
            single(
                "Runs reopened (24h)",
                "short",
                query(f"sum(increase({m.CAMPAIGN_REOPENED}[{WINDOW}]))"),
            )
        )
        .with_panel(
            series(
                "Runs closed by grid level",
                "short",
                query(
                    f"sum by (level, outcome) (increase({m.CAMPAIGN_RUNS_CLOSED}[1h]))",
                    "{{outcome}} at {{level}}",
                ),
            )
        )
        .with_panel(
            series(
                "Resolved by department",
                "short",
                query(f"sum by (department) (increase({closed}[1h]))", "{{department}}"),
            )
        )
        .with_panel(
            series(
                "Time to acknowledge by department",
                "s",
                *quantiles(m.TIME_TO_ACK, "6h", by="department"),
            )
        )
        .with_panel(
            series(
                "Time to resolve by department",
                "s",
                *quantiles(m.TIME_TO_RESOLVE, "6h", by="department"),
            )
        )
        .with_panel(
            series(
                "Citizen reports, closures and answers",
                "short",
                query(f"sum(increase({m.CAMPAIGN_REPORTS}[1h]))", "reports covered", "A"),
                query(f"sum(increase({m.CAMPAIGN_REPLIES}[1h]))", "closures sent", "B"),
                query(
                    f"sum by (satisfied) (increase({m.CAMPAIGN_ANSWERS}[1h]))",
                    "answers satisfied={{satisfied}}",
                    "C",
                ),
            )
        )
        .with_panel(
            series(
                "Reopened by grid level",
                "short",
                query(f"sum by (level) (increase({m.CAMPAIGN_REOPENED}[1h]))", "{{level}}"),
            )
        )
    )

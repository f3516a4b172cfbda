"""citybrain: a streaming city-operations brain (Kafka, faust, detectors, playbooks).

Every command ends with one line saying what went wrong, never a traceback, and one of
these exit statuses (also in README "Commands"):

  0    done
  1    the command ran and the answer is no: checks failed (`playbooks check`; `stack
       status`: Kafka or Prometheus not ready, or the demo's worker crashed), the API
       refused the request (Grafana's 4xx too), the demo raised no alert, no run was
       created in a campaign report's period
  2    a bad command line, input file or setting (the message names it)
  3    a service the command needs did not answer or could not start: Kafka, Prometheus,
       a worker's operator API, Grafana (also one that kept answering 5xx); or a port
       it listens on is already in use; or another demo is running on the same stack
  70   an unexpected error, i.e. a bug (CITYBRAIN_DEBUG=1 prints the traceback)
  130  interrupted (Ctrl-C or SIGTERM); a worker whose shutdown could not
       finish (Kafka down) in 10 s or that got a second signal
  141  the output was closed early (`citybrain ... | head`); nothing more is printed

The commands live one module each (``runs``, ``silences``, ``replay`` in ``feeds``, …),
``parser`` builds the command line and ``main`` is the boundary above."""

from __future__ import annotations

from citybrain.cli.base import (
    EXIT_BUG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PIPE,
    EXIT_SERVICE,
    EXIT_STATUSES,
    EXIT_USAGE,
    CliError,
)
from citybrain.cli.main import main
from citybrain.cli.parser import build_parser

__all__ = [
    "EXIT_BUG",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PIPE",
    "EXIT_SERVICE",
    "EXIT_STATUSES",
    "EXIT_USAGE",
    "CliError",
    "build_parser",
    "main",
]

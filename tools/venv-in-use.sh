#!/bin/sh
# `make clean`'s check: refuse to delete a virtualenv that processes still run from.
# Usage: tools/venv-in-use.sh VENV
# Status 0 when no process runs from VENV (or it does not exist); else one line per such
# process on stderr, with the commands that stop them, and status 1 (make adds "Error 1").
#
# t168: `make clean` while the demo's worker ran deleted .venv under it: the worker went on
# from the files it had open, then failed on its next import, and `citybrain stack down`
# (the command that stops it) was gone with the virtualenv, so the worker, Kafka and
# Prometheus were left running with no command to stop them but kill.
set -u

venv=$1
[ -d "$venv" ] || exit 0
logical=$(cd "$venv" && pwd) || exit 0
physical=$(cd "$venv" && pwd -P) || exit 0

users=""
for proc in /proc/[0-9]*; do
    pid=${proc#/proc/}
    [ "$pid" = "$$" ] && continue
    # argv[0]: the virtualenv's python (a worker started with sys.executable, a script's
    # shebang line, `.venv/bin/python -m …`), relative to the process's directory when
    # typed so.
    # (A process that ends meanwhile has no cmdline left: skipped, silently.)
    first=$({ tr '\0' '\n' <"$proc/cmdline"; } 2>/dev/null | head -n 1)
    [ -n "$first" ] || continue
    case $first in
    /*) ;;
    *) first="$(readlink "$proc/cwd" 2>/dev/null)/$first" ;;
    esac
    case $first in
    "$logical"/* | "$physical"/*) ;;
    *) continue ;;
    esac
    command=$({ tr '\0' ' ' <"$proc/cmdline"; } 2>/dev/null | cut -c 1-120)
    users="$users  pid $pid: $command
"
done

[ -z "$users" ] && exit 0
{
    echo "make clean: refused: these processes run from $logical, which it would delete under them:"
    printf %s "$users"
    echo "stop them first, then run make clean again: $venv/bin/citybrain stack down stops the demo's worker, Kafka and Prometheus (with the CITYBRAIN_* settings the demo ran with, if any); kill PID stops another"
} >&2
exit 1

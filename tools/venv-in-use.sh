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

# The local stack's services (Kafka's java, Prometheus, Mosquitto) do not run from the
# virtualenv, but the command that stops them does (t174: `make clean` with the stack
# up went on, and `make stack-down` then reinstalled .venv to stop it). Found by the pid
# files of the run directory the commands use (CITYBRAIN_RUN_DIR, else
# CITYBRAIN_HOME/run, else ~/.cache/citybrain/run), each pid checked to be that service's
# (a pid file left by a crash may name a pid reused since).
stack=""
home=${CITYBRAIN_HOME:-}
[ -n "$home" ] || home="$HOME/.cache/citybrain"
case $home in "~"/*) home="$HOME/${home#"~/"}" ;; esac
run=${CITYBRAIN_RUN_DIR:-}
[ -n "$run" ] || run="$home/run"
case $run in "~"/*) run="$HOME/${run#"~/"}" ;; esac
for service in kafka prometheus mosquitto; do
    pid=$(cat "$run/$service/$service.pid" 2>/dev/null) || continue
    case $pid in '' | *[!0-9]*) continue ;; esac
    command=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null)
    case $command in *"$service"*) ;; *) continue ;; esac
    stack="$stack  pid $pid: the local stack's $service (run directory $run)
"
done

[ -z "$users$stack" ] && exit 0
{
    if [ -n "$users" ]; then
        echo "make clean: refused: these processes run from $logical, which it would delete under them:"
        printf %s "$users"
    fi
    if [ -n "$stack" ]; then
        echo "make clean: refused: the local stack runs, and $logical, which it would delete, holds the command that stops it:"
        printf %s "$stack"
    fi
    echo "stop them first, then run make clean again: $venv/bin/citybrain stack down stops the demo's worker, Kafka, Prometheus and Mosquitto (with the CITYBRAIN_* settings the demo ran with, if any); kill PID stops another"
} >&2
exit 1

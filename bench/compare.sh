#!/usr/bin/env bash
# FreeRADIUS + rlm_sql against cdr-collector under the same load, in one run (see
# bench/compare.py). The load comes from bench/radload.c, built with gcc at start, or
# with --loader radclient from FreeRADIUS's radclient. Needs gcc, the packages
# freeradius and freeradius-postgresql (freeradius-utils for radclient), the local
# PostgreSQL and the project's .venv (.ci/setup).
#
# The collector runs with the interpreter this script runs compare.py with:
# .venv's, or CDR_BENCH_PYTHON's, e.g. a virtual environment made from Debian's
# python3 (built with PGO and LTO, as a production install under /opt is) with
# the package installed in it:
#   /usr/bin/python3 -m venv /tmp/cdr-venv && /tmp/cdr-venv/bin/pip install .
#   CDR_BENCH_PYTHON=/tmp/cdr-venv/bin/python bench/compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${CDR_BENCH_PYTHON:-.venv/bin/python}" bench/compare.py "$@"

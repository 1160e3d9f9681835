#!/usr/bin/env bash
# FreeRADIUS + rlm_sql against cdr-collector under the same load, in one run (see
# bench/compare.py). The load comes from bench/radload.c, built with gcc at start, or
# with --loader radclient from FreeRADIUS's radclient. Needs gcc, the packages
# freeradius and freeradius-postgresql (freeradius-utils for radclient), the local
# PostgreSQL and the project's .venv (.ci/setup).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python bench/compare.py "$@"

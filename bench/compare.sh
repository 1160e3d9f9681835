#!/usr/bin/env bash
# FreeRADIUS + rlm_sql against cdr-collector under the same radclient load, in one
# run (see bench/compare.py). Needs the packages freeradius, freeradius-postgresql
# and freeradius-utils, the local PostgreSQL and the project's .venv (.ci/setup).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python bench/compare.py "$@"

#!/usr/bin/env bash
# Regenerates ecs-fields.csv: the Elastic Common Schema field reference (every field and its
# type), against which the agent's alert documents are checked (agent/src/alerts/ecs.rs). It
# is ECS's own generated/csv/fields.csv (Apache-2.0, elastic/ecs) cut to three columns:
#   cd agent/tests/data && ./make-ecs-fields.sh v8.17.0 > ecs-fields.csv
set -euo pipefail
tag=${1:-v8.17.0}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
git clone -q --depth 1 --branch "$tag" https://github.com/elastic/ecs "$dir/ecs"
python3 - "$dir/ecs/generated/csv/fields.csv" <<'PY'
import csv, sys
rows = csv.reader(open(sys.argv[1]))
next(rows)
print("ECS_Version,Field,Type")
for row in rows:
    print(f"{row[0]},{row[3]},{row[4]}")
PY

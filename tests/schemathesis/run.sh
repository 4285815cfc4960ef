#!/usr/bin/env bash
# Fuzzes the real server against its own OpenAPI document (docs/api-fuzzing.md):
# a fresh database with the demo data, `dossier serve --demo` on a free port,
# then schemathesis with every check, once per role, with a fixed seed.
# Exits non-zero on any failure. Needs python3 (3.10+), PostgreSQL at
# FUZZ_POSTGRES_URL (trust or password in the URL) and psql to drop the database.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tests/schemathesis

seed=${FUZZ_SEED:-14}
# Cases per operation and phase; 25 gives ~2,300 cases per role, 11,000+ in all.
max_examples=${FUZZ_MAX_EXAMPLES:-25}
min_cases=${FUZZ_MIN_CASES:-10000}
# Wall time per role; a run that needs longer fails.
role_timeout=${FUZZ_ROLE_TIMEOUT:-150}
roles=${FUZZ_ROLES:-"sales manager compliance auditor admin"}
pg=${FUZZ_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}

venv=target/schemathesis-venv
run_dir=target/schemathesis/run
db=dossier_fuzz_$$
started=$(date +%s)

# A venv of its own, reused while requirements.txt is unchanged.
stamp=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$stamp" ]; then
  echo "schemathesis: installing $(grep '^schemathesis==' "$here/requirements.txt") into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  echo "$stamp" >"$venv/.requirements"
fi

echo "schemathesis: cargo build -p dossier --bin dossier"
cargo build --quiet -p dossier --bin dossier

rm -rf "$run_dir"
mkdir -p "$run_dir"
server_pid=
cleanup() {
  status=$?
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 \
    || echo "schemathesis: could not drop database $db" >&2
  if [ "$status" != 0 ]; then
    echo "schemathesis: server log: $run_dir/server.log" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The server creates the database (it does not exist yet) and migrates it;
# --demo seeds ~50 customers and makes one token per role.
DATABASE_URL="$pg/$db" \
DOSSIER_STATE_DIR="$run_dir/state" \
DOSSIER_LISTEN=127.0.0.1:0 \
DOSSIER_NO_PRIVATE_POSTGRES=1 \
RUST_LOG=${RUST_LOG:-warn} \
  target/debug/dossier serve --demo >"$run_dir/server.out" 2>"$run_dir/server.log" &
server_pid=$!

base=
for _ in $(seq 1 240); do
  base=$(sed -n 's/^dossier listening on //p' "$run_dir/server.out")
  [ -n "$base" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$run_dir/server.log" >&2; exit 1; }
  sleep 0.5
done
[ -n "$base" ] || { echo "schemathesis: the server did not start" >&2; exit 1; }

token() {
  "$venv/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["tokens"]["demo-" + sys.argv[2]]["token"])' \
    "$run_dir/state/demo-tokens.json" "$1"
}

# The config refers to the dictionaries next to it: both live in the run dir.
cp "$here/schemathesis.toml" "$run_dir/"
"$venv/bin/python" "$here/fixtures.py" "$base" "$(token admin)" "$run_dir"

# Hypothesis keeps a directory of its own; not in the work tree.
export HYPOTHESIS_STORAGE_DIRECTORY="$run_dir/hypothesis"
reports=()
for role in $roles; do
  echo "schemathesis: $role (seed $seed, at most $max_examples examples per operation and phase)"
  # Each role's writes change what the next one sees: the roles run one after
  # another on the same data, in a fixed order, so a seed replays a run.
  rc=0
  DOSSIER_TOKEN=$(token "$role") timeout "$role_timeout" \
    "$venv/bin/st" --config-file "$run_dir/schemathesis.toml" --no-color run "$base/openapi.json" \
    --checks all --seed "$seed" --max-examples "$max_examples" \
    --report json --report-json-path "$run_dir/$role.json" \
    >"$run_dir/$role.log" 2>&1 || rc=$?
  if [ "$rc" = 124 ]; then
    echo "schemathesis: $role took longer than $role_timeout s" >&2
  elif [ "$rc" != 0 ]; then
    sed -n '/^=* FAILURES =*$/,$p' "$run_dir/$role.log"
  fi
  reports+=("$role=$run_dir/$role.json")
done

"$venv/bin/python" "$here/summary.py" "$min_cases" "$(($(date +%s) - started))" "${reports[@]}"

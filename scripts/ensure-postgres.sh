#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 with trust auth for local connections,
# starting (or installing and starting) Debian's cluster when it does not, and that it has the database
# the tests use (`test`). Used by .ci/run.
set -euo pipefail
ready() { pg_isready -q -h 127.0.0.1 -p 5432; }
# the tests' database (a fresh cluster has only postgres, template0 and template1)
database() {
  if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" postgres | grep -q 1; then
    psql -h 127.0.0.1 -U postgres -qc 'CREATE DATABASE test' postgres && echo "postgres: created database test"
  fi
}
if command -v pg_isready >/dev/null && ready; then echo "postgres: running"; database; exit 0; fi
if ! command -v pg_ctlcluster >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /etc/postgresql | sort -V | tail -1)
if [ -z "$version" ]; then echo "postgres: no cluster found under /etc/postgresql" >&2; exit 1; fi
hba="/etc/postgresql/$version/main/pg_hba.conf"
if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
  # tests connect as postgres over loopback without a password; only loopback is trusted
  sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$hba"
fi
pg_ctlcluster --skip-systemctl-redirect "$version" main start || pg_ctlcluster --skip-systemctl-redirect "$version" main reload
for _ in $(seq 1 30); do ready && { echo "postgres: started"; database; exit 0; }; sleep 1; done
echo "postgres: did not become ready on 127.0.0.1:5432" >&2
exit 1

#!/bin/sh
# One PostgreSQL role per service, owning only its database (docker compose; the official
# postgres image runs this from /docker-entrypoint-initdb.d on the volume's first start).
# Idempotent: run it again on an existing volume (passwords are updated, databases kept):
#   docker compose exec postgres sh /docker-entrypoint-initdb.d/10-roles.sh
# Objects created earlier by the superuser stay the superuser's: on such a volume, move them
# with `ALTER TABLE ... OWNER TO interloper_<service>` (or start from a fresh volume).
set -eu
for service in identity pipelines notifications agent; do
  var="POSTGRES_$(echo "$service" | tr a-z A-Z)_PASSWORD"
  eval "password=\${$var:?$var is not set}"
  role="interloper_$service"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
       -v role="$role" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'role') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'role', :'role') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'role') \gexec
ALTER DATABASE :"role" OWNER TO :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;
SQL
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$role" -v role="$role" <<'SQL'
ALTER SCHEMA public OWNER TO :"role";
SQL
done

#!/usr/bin/env bash
# Restore a backup made by backup.sh: restore.sh BACKUP_PATH
#   - every <db>.dump into database <db><RESTORE_SUFFIX>: with a suffix, into new databases
#     (a restore drill; nothing running is touched); without one, in place (the database is
#     dropped and recreated: stop the services that use it first, as `make restore` does);
#   - the MLflow artifacts into MLFLOW_ARTIFACTS_DIR, if set (in place only).
# The checksums in MANIFEST.sha256 are verified first.
set -euo pipefail
backup="${1:?usage: restore.sh BACKUP_PATH}"
suffix="${RESTORE_SUFFIX:-}"
(cd "$backup" && sha256sum --check --quiet MANIFEST.sha256)
for dump in "$backup"/*.dump; do
  db="$(basename "$dump" .dump)"
  if [[ -n "$suffix" ]]; then
    createdb "$db$suffix"
    pg_restore --exit-on-error --no-owner --dbname "$db$suffix" "$dump"
  else
    # --create: recreate the database as it was (owner, settings), after dropping it
    dropdb --if-exists --force "$db"
    pg_restore --exit-on-error --create --dbname postgres "$dump"
  fi
  echo "restored $db into $db$suffix"
done
if [[ -z "$suffix" && -n "${MLFLOW_ARTIFACTS_DIR:-}" && -f "$backup/mlflow-artifacts.tar.gz" ]]; then
  find "$MLFLOW_ARTIFACTS_DIR" -mindepth 1 -delete
  tar -C "$MLFLOW_ARTIFACTS_DIR" -xzf "$backup/mlflow-artifacts.tar.gz"
  echo "restored the MLflow artifacts"
fi

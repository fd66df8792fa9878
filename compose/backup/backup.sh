#!/usr/bin/env bash
# One backup: a pg_dump (custom format) of every database in BACKUP_DATABASES and a tarball of
# the MLflow artifacts, into BACKUP_DIR/<UTC time>/ with a SHA-256 manifest; then only the
# newest BACKUP_KEEP backups are kept. The server is the one PGHOST/PGPORT/PGUSER/PGPASSWORD name.
#
# The compose `backup` service runs it every BACKUP_INTERVAL_SECONDS; `make backup` runs it now.
set -euo pipefail
: "${BACKUP_DIR:?}" "${BACKUP_DATABASES:?}"
keep="${BACKUP_KEEP:-7}"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
partial="$BACKUP_DIR/.$stamp.partial"
mkdir -p "$partial"
for db in $BACKUP_DATABASES; do
  pg_dump --format=custom --compress=6 --file "$partial/$db.dump" --dbname "$db"
done
if [[ -n "${MLFLOW_ARTIFACTS_DIR:-}" && -d "$MLFLOW_ARTIFACTS_DIR" ]]; then
  tar -C "$MLFLOW_ARTIFACTS_DIR" -czf "$partial/mlflow-artifacts.tar.gz" .
fi
(cd "$partial" && sha256sum -- * > MANIFEST.sha256)
mv "$partial" "$BACKUP_DIR/$stamp"  # a backup is only visible once complete
date -u +%Y-%m-%dT%H:%M:%SZ > "$BACKUP_DIR/last-success"
# rotation: the newest $keep complete backups stay
find "$BACKUP_DIR" -mindepth 1 -maxdepth 1 -type d -name '2*Z' | sort | head -n "-$keep" \
  | xargs -r rm -rf --
echo "backup $BACKUP_DIR/$stamp: $(du -sh "$BACKUP_DIR/$stamp" | cut -f1)"

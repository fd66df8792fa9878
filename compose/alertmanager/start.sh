#!/bin/sh
# Renders the Alertmanager config for this start, then runs Alertmanager with the given flags.
# The receiver is the Slack-compatible webhook when ALERT_WEBHOOK_URL is set, else "null".
set -eu
config_dir="${ALERTMANAGER_CONFIG_DIR:-/etc/alertmanager}"
run_dir="${ALERTMANAGER_RUN_DIR:-/alertmanager}"
if [ -n "${ALERT_WEBHOOK_URL:-}" ]; then receiver=slack; else receiver=null; fi
umask 077
printf '%s' "${ALERT_WEBHOOK_URL:-}" > "$run_dir/webhook_url"
sed -e "s|__RECEIVER__|$receiver|g" -e "s|__RUN_DIR__|$run_dir|g" \
  "$config_dir/alertmanager.yml" > "$run_dir/alertmanager.yml"
echo "alertmanager: receiver $receiver"
exec "${ALERTMANAGER_BIN:-/bin/alertmanager}" --config.file="$run_dir/alertmanager.yml" "$@"

#!/usr/bin/env bash
# Continuous deployment on the VM (the Jenkinsfile's Deploy stage: `make deploy TAG=<commit>`).
#
# Rolls the app services out to the images tagged TAG (`docker compose up -d --wait`: only
# containers whose image or config changed are recreated), then smoke-tests the API from inside
# its container (`fournil api smoke`, with a temporary key). On failure it puts the previous tag
# back and rolls the services out again; if the champion model moved during the deployment it
# moves it back too (`fournil model rollback`, audited). Exit 0 when TAG is live, 1 otherwise.
#
# FOURNIL_DEPLOY_DIR: the stack's folder on the VM (docker-compose.yml and .env); the tag lives
# in its .env as FOURNIL_VERSION. DEPLOY_SERVICES, DEPLOY_WAIT_SECONDS: what and how long.
set -euo pipefail
tag="${1:?usage: deploy.sh TAG}"
dir="${FOURNIL_DEPLOY_DIR:?the stack folder on the VM (docker-compose.yml and .env)}"
env_file="$dir/.env"
read -r -a services <<<"${DEPLOY_SERVICES:-migrate mlflow prefect-server worker api}"
wait_seconds="${DEPLOY_WAIT_SECONDS:-300}"
compose=(docker compose --project-directory "$dir" --env-file "$env_file")

set_tag() {
  if grep -q '^FOURNIL_VERSION=' "$env_file"; then
    sed -i "s/^FOURNIL_VERSION=.*/FOURNIL_VERSION=$1/" "$env_file"
  else
    echo "FOURNIL_VERSION=$1" >>"$env_file"
  fi
}
rollout() {
  set_tag "$1"
  "${compose[@]}" up -d --wait --wait-timeout "$wait_seconds" "${services[@]}"
}
smoke() { "${compose[@]}" exec -T api fournil api smoke; }
champion() { "${compose[@]}" exec -T worker fournil model champion 2>/dev/null || true; }

previous="$(sed -n 's/^FOURNIL_VERSION=//p' "$env_file")"
previous="${previous:-0.1.0}"
champion_before="$(champion)"
echo "deploy: ${services[*]} from $previous to $tag (champion: ${champion_before:-none})"
if rollout "$tag" && smoke; then
  echo "deploy: $tag is live"
  exit 0
fi

echo "deploy: $tag failed; rolling back to $previous" >&2
rollout "$previous" || echo "deploy: the rollback to $previous is not healthy either" >&2
champion_after="$(champion)"
if [[ -n "$champion_before" && "$champion_after" != "$champion_before" ]]; then
  echo "deploy: champion moved ($champion_before -> $champion_after): rolling the model back" >&2
  "${compose[@]}" exec -T worker fournil model rollback
fi
if smoke; then
  echo "deploy: back on $previous" >&2
else
  echo "deploy: $previous fails its smoke test too: look now" >&2
fi
exit 1

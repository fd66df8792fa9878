# STAND-IN FOR TESTS ONLY, tagged prom/prometheus:v2.54.1.
# Debian's prometheus (2.42 of bookworm) at /bin/prometheus, with wget for the health check.
# Differs: an older Prometheus, Debian instead of busybox, runs as root (the real one as nobody).
ARG BASE
FROM ${BASE}
RUN apt-get update && apt-get install -y prometheus wget \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /prometheus /etc/prometheus
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]

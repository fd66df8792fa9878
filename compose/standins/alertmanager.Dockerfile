# STAND-IN FOR TESTS ONLY, tagged prom/alertmanager:v0.27.0.
# Debian's prometheus-alertmanager (0.25 of bookworm) linked as /bin/alertmanager, with sh and
# wget. Differs: an older Alertmanager, Debian instead of busybox, runs as root.
ARG BASE
FROM ${BASE}
RUN apt-get update && apt-get install -y prometheus-alertmanager wget \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/prometheus-alertmanager /usr/bin/alertmanager \
    && mkdir -p /alertmanager /etc/alertmanager
WORKDIR /alertmanager
EXPOSE 9093
ENTRYPOINT ["/bin/alertmanager"]
CMD ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"]

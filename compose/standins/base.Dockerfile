# STAND-IN FOR TESTS ONLY: the Debian bookworm base every other stand-in builds on.
# Made from a debootstrapped minbase root file system (no registry is reachable here), plus what
# a container needs to reach the package registries from this machine: its apt sources and its
# CA bundle (SSL_CERT_FILE, REQUESTS_CA_BUNDLE, PIP_CERT: uv and pip). The bundle has a path of its
# own, since installing Debian's ca-certificates rewrites /etc/ssl/certs/ca-certificates.crt. It
# lives here, never in the project's own Dockerfiles.
ARG ROOTFS
FROM ${ROOTFS}
COPY debian.sources /etc/apt/sources.list.d/debian.sources
COPY ca-certificates.crt /etc/ssl/fournil-standin/ca-bundle.crt
ENV SSL_CERT_FILE=/etc/ssl/fournil-standin/ca-bundle.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/fournil-standin/ca-bundle.crt \
    PIP_CERT=/etc/ssl/fournil-standin/ca-bundle.crt \
    DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8
RUN rm -f /etc/apt/sources.list \
    && printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
        > /etc/apt/apt.conf.d/90fournil-standin
CMD ["bash"]

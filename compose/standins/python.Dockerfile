# STAND-IN FOR TESTS ONLY, tagged python:3.11.10-slim-bookworm.
# Differs from the real image: Debian's python3.11 (3.11.2) in /usr/bin instead of a source build
# of 3.11.10 in /usr/local; `python` and `pip` are links to Debian's; pip may install system-wide
# (EXTERNALLY-MANAGED removed) as in the real image. Like the real slim image it has
# ca-certificates, netbase and tzdata, and no compiler and no libgomp1.
ARG BASE
FROM ${BASE}
RUN apt-get update \
    && apt-get install -y python3 python3-venv python3-pip ca-certificates netbase tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED \
    && ln -s /usr/bin/python3 /usr/local/bin/python \
    && ln -s /usr/bin/pip3 /usr/local/bin/pip
CMD ["python3"]

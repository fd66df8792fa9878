# STAND-IN FOR TESTS ONLY, tagged ghcr.io/astral-sh/uv:0.13.9.
# Like the real image: FROM scratch with /uv and /uvx only. Differs: the binaries come from the
# uv 0.13.9 wheel on PyPI (the glibc build) instead of the release's static musl build.
ARG BASE
FROM ${BASE} AS get
RUN apt-get update && apt-get install -y python3-venv && python3 -m venv /v \
    && /v/bin/pip install --no-cache-dir uv==0.13.9

FROM scratch
COPY --from=get /v/bin/uv /uv
COPY --from=get /v/bin/uvx /uvx
ENTRYPOINT ["/uv"]

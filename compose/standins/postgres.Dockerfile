# STAND-IN FOR TESTS ONLY, tagged postgres:15.10-bookworm.
# Debian's postgresql-15 (15.x of bookworm) with an entry point (postgres-entrypoint.sh) that
# honours what docker-compose.yml relies on from the official image: POSTGRES_USER,
# POSTGRES_PASSWORD and POSTGRES_DB, a UTF-8 cluster (C.UTF-8) in PGDATA on first start,
# password auth (scram-sha-256) from other hosts, /docker-entrypoint-initdb.d/*.sh and *.sql run
# once, the server run as user postgres, and pg_isready/psql/pg_dump on PATH.
# Differs: not the official entry point script (no POSTGRES_INITDB_ARGS, no *.sql.gz, no
# POSTGRES_HOST_AUTH_METHOD), the postgres user's uid is Debian's, no gosu.
ARG BASE
FROM ${BASE}
RUN apt-get update \
    && apt-get install -y postgresql-15 postgresql-client-15 \
    && rm -rf /var/lib/apt/lists/* \
    && pg_dropcluster 15 main \
    && mkdir -p /docker-entrypoint-initdb.d /var/run/postgresql /var/lib/postgresql/data \
    && chown postgres:postgres /var/run/postgresql /var/lib/postgresql/data \
    && chmod 3777 /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]

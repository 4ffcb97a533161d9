# The gateway as a container image.
#
#   docker build -t gateway .
#   docker run -p 8080:8080 -p 8443:8443 -v gateway-etc:/etc/gateway \
#       -v gateway-state:/var/lib/gateway gateway
#   docker run --rm -v gateway-etc:/etc/gateway -v gateway-state:/var/lib/gateway \
#       gateway network create --name acme
#
# /etc/gateway holds config.yaml and policies/ (written on the first start, then yours);
# /var/lib/gateway the state: CA, server certificate, key-encryption key, SQLite store.
# The runtime stage's install is docker/install.sh, which CI also runs outside Docker.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# The compiled build (gateway/build.py): gcc for mypyc's C, and mypyc type-checks what it
# compiles, so the dependencies and the `compile` extra are installed first.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY gateway ./gateway
RUN pip install --no-cache-dir '.[compile]' \
    && GATEWAY_COMPILE=1 pip wheel --no-cache-dir --no-deps --no-build-isolation \
        --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
COPY docker/install.sh docker/entrypoint.sh /tmp/install/
COPY --from=build /wheels/ /tmp/install/
RUN PIP_NO_CACHE_DIR=1 sh /tmp/install/install.sh /tmp/install/gateway-*.whl \
    && rm -rf /tmp/install
ENV PATH=/opt/gateway/bin:$PATH \
    GATEWAY_CONFIG_DIR=/etc/gateway \
    GATEWAY_STATE_DIR=/var/lib/gateway \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/gateway
VOLUME ["/etc/gateway", "/var/lib/gateway"]
EXPOSE 8080 8443
# /healthz on the HTTP listener (8080 unless GATEWAY_SERVER_HTTP moves it).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
# SIGTERM drains: /readyz says 503 for server.drain_grace, in-flight requests finish
# within server.shutdown_timeout (give `docker stop -t` more than both).
STOPSIGNAL SIGTERM
ENTRYPOINT ["gateway-entrypoint"]
CMD ["serve"]

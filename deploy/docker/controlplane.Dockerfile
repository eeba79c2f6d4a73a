# The control plane: `reconciler serve` as a non-root user, from the project's wheel only.
#   podman build -f deploy/docker/controlplane.Dockerfile -t mesh-reconciler:0.1.0 .
# State (the git mirror, history) under /var/lib/reconciler; the shared keys (a Kubernetes
# Secret made from `reconciler keys init`) mounted read-only at /etc/reconciler/keys.

# Stage 1: build the wheel. Nothing of this stage but the wheel reaches the image.
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
COPY schemas ./schemas
RUN pip install --no-cache-dir --quiet build \
    && python -m build --wheel --outdir /dist

# Stage 2: a venv with the wheel and its dependencies, owned by root, run by an unprivileged user.
FROM python:3.11-slim
ENV PATH=/opt/reconciler/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RECONCILER_KEYS_DIR=/etc/reconciler/keys
COPY --from=wheel /dist/ /tmp/dist/
RUN python -m venv /opt/reconciler \
    && /opt/reconciler/bin/pip install --no-cache-dir --quiet /tmp/dist/*.whl \
    && rm -rf /tmp/dist \
    && groupadd --system --gid 10001 reconciler \
    && useradd --system --uid 10001 --gid reconciler --home-dir /var/lib/reconciler --shell /usr/sbin/nologin reconciler \
    && install -d -o reconciler -g reconciler -m 0750 /var/lib/reconciler \
    && install -d -m 0755 /etc/reconciler/keys /config
USER 10001:10001
WORKDIR /var/lib/reconciler
VOLUME ["/var/lib/reconciler"]
EXPOSE 5678 5681
# The API's liveness endpoint; readiness (/readyz) is for the orchestrator, not for a restart.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:5681/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["reconciler"]
# The default serves a repository mounted at /config; Kubernetes (deploy/kubernetes) and the
# chart replace these arguments with a remote repository, its branch and credentials.
CMD ["serve", "--repo", "/config", "--state-dir", "/var/lib/reconciler", "--keys-dir", "/etc/reconciler/keys", "--address", "0.0.0.0", "--api-address", "0.0.0.0"]

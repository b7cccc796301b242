# The Bodywork GitOps service, for the Helm chart in helm/ (docs/helm.md).
#
#   docker build -t registry.example.com/bodywork-gitops:0.1.0 .
#   docker push registry.example.com/bodywork-gitops:0.1.0
#   helm install bodywork helm/ --set image.repository=registry.example.com/bodywork-gitops
#
# The tests build the same image without Docker (scripts/service_image.py): Debian bookworm's
# Python 3.11, the project installed with pip, a `bodywork` command, user 10001.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY runner runner
COPY gitops gitops
COPY chatops chatops
RUN pip install --no-cache-dir --target /opt/bodywork/lib . \
    && rm -rf /opt/bodywork/lib/bin

FROM python:3.11-slim-bookworm
RUN groupadd --gid 10001 bodywork \
    && useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin bodywork
COPY --from=build /opt/bodywork/lib /opt/bodywork/lib
RUN printf '#!/usr/local/bin/python3\nimport sys\n\nsys.path.insert(0, "/opt/bodywork/lib")\nfrom gitops.cli import main\n\nsys.exit(main())\n' \
        > /usr/local/bin/bodywork \
    && chmod 0755 /usr/local/bin/bodywork
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/tmp
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
# The chart runs `bodywork serve --config /etc/bodywork/config/config.yaml`.
ENTRYPOINT ["bodywork"]
CMD ["serve", "--host", "0.0.0.0"]

# Parcel Hub: API (default) or worker (`hub worker`) image.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY preferences ./preferences
COPY throttling ./throttling
COPY templates ./templates
COPY channels ./channels
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 hub
COPY --from=build /install /usr/local
USER hub
WORKDIR /home/hub
ENV HUB_LOG_JSON=true PYTHONUNBUFFERED=1
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz')" || exit 1
CMD ["hub", "serve", "--host", "0.0.0.0", "--port", "8000"]

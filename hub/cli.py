"""The `hub` command."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from hub.keys import Scope, create_key, list_keys, revoke_key
from hub.logs import configure
from hub.settings import DevSecretRefused, Settings, get_settings, refuse_dev_secret

app = typer.Typer(help="Parcel Hub: omnichannel notifications for parcel events.",
                  no_args_is_help=True, add_completion=False)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
templates_app = typer.Typer(help="Message templates.", no_args_is_help=True)
app.add_typer(templates_app, name="templates")


def _check_config(settings: Settings) -> None:
    """Stops with `file:line: problem` when a configured file is broken."""
    from hub.catalog_check import check_startup
    from hub.config_files import ConfigFileError

    try:
        check_startup(settings)
    except ConfigFileError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _refuse_dev_secret(settings: Settings, host: str | None = None) -> None:
    try:
        refuse_dev_secret(settings, host)
    except DevSecretRefused as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="API processes")] = 1,
    worker: Annotated[bool, typer.Option(help="Run the embedded worker thread")] = True,
) -> None:
    """Run the HTTP API (and, by default, the embedded worker); migrates an empty database."""
    import os
    import shutil
    import tempfile

    import uvicorn

    from hub.runtime import HubRuntime

    settings = get_settings()
    configure(settings.log_level, settings.log_json)
    _refuse_dev_secret(settings, host)
    _check_config(settings)
    HubRuntime.build(settings).db.dispose()  # migrate an empty store once, before forking
    os.environ["HUB_EMBEDDED_WORKER"] = "true" if worker and settings.embedded_worker else "false"
    private_metrics = workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if private_metrics:  # one /metrics for all API processes, whichever answers the scrape
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="hub-metrics-")
    get_settings.cache_clear()
    try:
        uvicorn.run("hub.api.app:app_from_settings", factory=True, host=host, port=port,
                    workers=workers, log_level="warning", timeout_graceful_shutdown=30)
    finally:
        if private_metrics:
            shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


@app.command("worker")
def worker_cmd(
    processes: Annotated[int, typer.Option(help="Worker processes")] = 1,
    threads: Annotated[int, typer.Option(
        help="dramatiq consumer threads per process (messages that arrive while one is "
             "being loaded are loaded together)")] = 16,
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve Prometheus /metrics on this port (all processes of this command)")] = None,
) -> None:
    """Run workers until SIGTERM/SIGINT: the jobs in hand finish (with a broker, unstarted
    messages go back to the queue).

    With HUB_BROKER_URL set they are dramatiq consumers plus the outbox relay; otherwise
    they poll the outbox directly. Each process keeps HUB_SEND_CONCURRENCY provider calls in
    flight.
    """
    import subprocess
    import sys

    settings = get_settings()
    configure(settings.log_level, settings.log_json)
    _refuse_dev_secret(settings)
    _check_config(settings)
    if metrics_port is not None:
        from hub.scrape import serve_metrics

        serve_metrics(settings, metrics_port)
    children = [
        subprocess.Popen([sys.executable, "-m", "hub", "worker", "--threads", str(threads)])
        for _ in range(processes - 1)
    ]
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    _run_workers(settings, threads, stop)
    for child in children:
        child.send_signal(signal.SIGTERM)
    failed = sum(child.wait() != 0 for child in children)
    raise typer.Exit(1 if failed else 0)


def _run_workers(settings: Settings, threads: int, stop: threading.Event) -> None:
    from hub.campaigns.runner import start_loop as start_campaigns
    from hub.followups.firing import start_loop
    from hub.runtime import HubRuntime
    from hub.webhook_sender import start_webhook_sender
    from hub.worker import Worker

    runtime = HubRuntime.build(settings)
    followups = start_loop(runtime)  # due timers fire here too (claims are leased)
    campaigns = start_campaigns(runtime)  # and campaigns run here (leased, one at a time)
    webhooks = start_webhook_sender(runtime.db, settings, stop)  # outgoing webhooks
    if settings.broker_url:
        import dramatiq

        from hub.dispatch import Dispatcher, make_broker

        dispatcher = Dispatcher(runtime.db, runtime.pipeline, settings,
                                make_broker(settings.broker_url))
        consumer = dramatiq.Worker(dispatcher.broker, queues=dispatcher.queues,
                                   worker_threads=threads)
        consumer.start()
        relay = dispatcher.start_relay()
        while not stop.wait(0.5):
            pass
        dispatcher.stop()
        relay.join(timeout=10)
        consumer.stop(timeout=60_000)  # finishes messages in hand, requeues prefetched ones
        dispatcher.close_engine()  # the jobs handed to the engine finish and are recorded
        dispatcher.broker.close()
    else:
        # One engine per process keeps HUB_SEND_CONCURRENCY calls in flight; more polling
        # threads would only add claim transactions.
        worker = Worker(runtime.db, runtime.pipeline, settings)
        running = worker.start_thread()
        while not stop.wait(0.5):
            pass
        worker.stop()
        running.join(timeout=90)
    followups.stop()
    campaigns.stop()
    webhooks.join(timeout=settings.webhook_timeout_seconds + 5)
    runtime.db.dispose()


@app.command()
def migrate() -> None:
    """Bring the database schema to the newest revision."""
    from hub import migrate as migrations
    from hub.db import Database

    db = Database(get_settings().database_url)
    migrations.upgrade(db)
    typer.echo("database schema is current")
    db.dispose()


@app.command()
def purge() -> None:
    """Clear message bodies and event payloads and delete inbox items older than
    HUB_RETENTION_DAYS."""
    from hub.gdpr import purge_expired
    from hub.runtime import HubRuntime

    settings = get_settings()
    runtime = HubRuntime.build(settings)
    report = purge_expired(runtime.db, settings)
    typer.echo(f"purged {report.bodies} message bodies, {report.payloads} event payloads and "
               f"{report.inbox_items} inbox items older than {report.cutoff:%Y-%m-%d %H:%M} UTC")
    runtime.db.dispose()


@keys_app.command("create")
def keys_create(
    scope: Annotated[list[Scope], typer.Option("--scope", help="Repeat for several scopes")],
    producer: Annotated[str, typer.Option(help="The parcel system this key belongs to")],
    tenant: Annotated[str, typer.Option(help="The carrier or brand the key acts for")
                      ] = "default",
    name: Annotated[str | None, typer.Option(help="A label for operators")] = None,
) -> None:
    """Create an API key; the token is printed once and stored only as a hash."""
    from hub.runtime import HubRuntime

    if not tenant.strip() or len(tenant) > 64:
        raise typer.BadParameter("1 to 64 characters", param_hint="--tenant")
    runtime = HubRuntime.build(get_settings())
    try:
        typer.echo(create_key(runtime.db, producer, scope, name, tenant=tenant))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--producer") from exc
    finally:
        runtime.db.dispose()


@keys_app.command("list")
def keys_list() -> None:
    """List every key (id, tenant, producer, scopes, created, revoked); never the secrets."""
    from hub.runtime import HubRuntime

    runtime = HubRuntime.build(get_settings())
    for key in list_keys(runtime.db):
        revoked = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        typer.echo(f"{key.key_id}\t{key.tenant}\t{key.producer}\t{','.join(key.scopes)}\t"
                   f"{key.created_at:%Y-%m-%d %H:%M}\t{revoked}\t{key.name or ''}")
    runtime.db.dispose()


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id (hub_<id>_...)")]
                ) -> None:
    """Revoke a key: every process refuses it from the next request on."""
    from hub.runtime import HubRuntime

    if key_id.startswith("hub_"):  # a whole token was pasted: its id is the middle part
        key_id = key_id.split("_")[1]
    runtime = HubRuntime.build(get_settings())
    done = revoke_key(runtime.db, key_id)
    runtime.db.dispose()
    if not done:
        typer.echo(f"no active key {key_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


@keys_app.command("vapid")
def keys_vapid() -> None:
    """Generate a VAPID key pair for Web Push; put both lines in the environment (.env)."""
    from channels.webpush import generate_vapid_keys

    private, public = generate_vapid_keys()
    typer.echo(f"HUB_VAPID_PRIVATE_KEY={private}")
    typer.echo(f"HUB_VAPID_PUBLIC_KEY={public}")


@templates_app.command("check")
def templates_check(
    directory: Annotated[str | None, typer.Argument(
        help="A catalog directory laid over the packaged one (default: HUB_TEMPLATES_DIR)")
    ] = None,
) -> None:
    """Lint a template catalog: every type x channel x locale x tone present or an accepted
    fallback (fallbacks.toml), renders with sample data (samples.json), SMS within budget."""
    from pathlib import Path

    from hub.catalog_check import lint_catalog
    from hub.config_files import ConfigFileError

    settings = get_settings()
    target = directory or settings.templates_dir
    try:
        report = lint_catalog(Path(target) if target else None, settings)
    except ConfigFileError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for line in report.notes:
        typer.echo(f"note: {line}")
    for line in report.problems:
        typer.echo(f"problem: {line}", err=True)
    typer.echo(f"{report.cells} cells checked, {len(report.problems)} problems")
    raise typer.Exit(1 if report.problems else 0)


@app.command()
def demo() -> None:
    """Run the whole flow on a temporary SQLite database and print what was sent and why."""
    from hub.demo import run_demo

    raise typer.Exit(run_demo())

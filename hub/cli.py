"""The `hub` command."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from hub.keys import Scope, create_key
from hub.logs import configure
from hub.settings import get_settings

app = typer.Typer(help="Parcel Hub: omnichannel notifications for parcel events.",
                  no_args_is_help=True, add_completion=False)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="API processes")] = 1,
    worker: Annotated[bool, typer.Option(help="Run the embedded worker thread")] = True,
) -> None:
    """Run the HTTP API (and, by default, the embedded worker); migrates an empty database."""
    import os

    import uvicorn

    from hub.runtime import HubRuntime

    settings = get_settings()
    configure(settings.log_level, settings.log_json)
    HubRuntime.build(settings).db.dispose()  # migrate an empty store once, before forking
    os.environ["HUB_EMBEDDED_WORKER"] = "true" if worker and settings.embedded_worker else "false"
    get_settings.cache_clear()
    uvicorn.run("hub.api.app:app_from_settings", factory=True, host=host, port=port,
                workers=workers, log_level="warning", timeout_graceful_shutdown=30)


@app.command("worker")
def worker_cmd(
    threads: Annotated[int, typer.Option(help="Worker threads in this process")] = 1,
) -> None:
    """Run outbox workers until SIGTERM/SIGINT (finishing the job in hand)."""
    from hub.runtime import HubRuntime
    from hub.worker import Worker

    settings = get_settings()
    configure(settings.log_level, settings.log_json)
    runtime = HubRuntime.build(settings)
    from hub.alerts import OpsAlerts

    alerts = OpsAlerts.from_settings(settings)
    workers = [Worker(runtime.db, runtime.pipeline, settings, alerts) for _ in range(threads)]
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    running = [w.start_thread() for w in workers]
    while not stop.wait(0.5):
        pass
    for w in workers:
        w.stop()
    for t in running:
        t.join(timeout=60)
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


@keys_app.command("create")
def keys_create(
    scope: Annotated[list[Scope], typer.Option("--scope", help="Repeat for several scopes")],
    producer: Annotated[str, typer.Option(help="The parcel system this key belongs to")],
    name: Annotated[str | None, typer.Option(help="A label for operators")] = None,
) -> None:
    """Create an API key; the token is printed once and stored only as a hash."""
    from hub.runtime import HubRuntime

    runtime = HubRuntime.build(get_settings())
    typer.echo(create_key(runtime.db, producer, scope, name))
    runtime.db.dispose()


@keys_app.command("vapid")
def keys_vapid() -> None:
    """Generate a VAPID key pair for Web Push; put both lines in the environment (.env)."""
    from channels.webpush import generate_vapid_keys

    private, public = generate_vapid_keys()
    typer.echo(f"HUB_VAPID_PRIVATE_KEY={private}")
    typer.echo(f"HUB_VAPID_PUBLIC_KEY={public}")


@app.command()
def demo() -> None:
    """Run the whole flow on a temporary SQLite database and print what was sent and why."""
    from hub.demo import run_demo

    raise typer.Exit(run_demo())

"""The ``riskwatch`` command line (typer).

Service commands map one-to-one onto the three ways the product runs: ``run`` against
a real broker and database, ``demo`` with everything embedded, ``replay`` of a
recording; the tester commands (``simulate``, ``record``, ``score``, ``loadgen``) live
in :mod:`gateway.cli_tools`.
Errors in input files end with a one-line message naming the file and exit code 2,
never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gateway import cli_tools
from gateway.cli_users import users_app
from gateway.config import ConfigError, load_settings
from gateway.registry import RegistryError, load_registry
from gateway.registry.yaml_paths import LocatedError

if TYPE_CHECKING:
    from alerting.models import Alert

app = typer.Typer(
    help="riskwatch: risk monitoring of dust-explosion and metallurgy enterprises.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)


_fail = cli_tools.fail


def _registry_failure(exc: RegistryError) -> typer.Exit:
    """All problems of a registry at once: fixing them one run at a time is tedious."""
    problems = exc.errors or [exc]
    shown = "\n  ".join(str(p) for p in problems[:20])
    more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
    if len(problems) == 1:
        return _fail(shown)
    return _fail(f"{len(problems)} problems in the registry:\n  {shown}{more}")


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request URL at INFO, and robot webhook URLs carry their token.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


async def _until_signal(main: asyncio.Task[None], stop: Callable[[], object]) -> None:
    cli_tools.on_stop_signals(stop)
    await main


@app.command()
def run(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML settings file")
    ] = None,
    registry: Annotated[Path | None, typer.Option(help="Registry YAML (overrides config)")] = None,
    broker: Annotated[str | None, typer.Option(help="mqtt://host:port of the broker")] = None,
    db: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the store")] = None,
    host: Annotated[str | None, typer.Option(help="API bind address")] = None,
    port: Annotated[int | None, typer.Option(help="API port")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the service against a real broker and database until Ctrl-C / SIGTERM."""
    from gateway.service import Service, ServiceStartError

    _logging(verbose)
    try:
        settings = load_settings(
            config, registry=registry.resolve() if registry else None, broker_url=broker,
            db_url=db, api_host=host, api_port=port,
        )
        loaded = load_registry(settings.registry)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    except RegistryError as exc:
        raise _registry_failure(exc) from None
    service = Service(settings, loaded)

    async def main() -> None:
        await _until_signal(asyncio.create_task(service.run()), service.stop)

    try:
        asyncio.run(main())
    except ServiceStartError as exc:
        raise _fail(str(exc)) from None


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="API and page port")] = 8000,
    host: Annotated[str, typer.Option(help="API bind address")] = "127.0.0.1",
    broker_port: Annotated[int, typer.Option(help="Port of the embedded MQTT broker")] = 1884,
    data_dir: Annotated[Path | None, typer.Option(help="Keep the demo database here")] = None,
    locale: Annotated[str, typer.Option(help="Alert language: zh or en")] = "zh",
    password: Annotated[str | None, typer.Option(
        help="Password of the demo users (default: random, printed at start)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Everything embedded: broker, sample sites, simulator, SQLite, API and dashboard."""
    from gateway.demo import run_demo
    from gateway.service import ServiceStartError

    if locale not in ("zh", "en"):
        raise _fail("--locale must be zh or en")
    _logging(verbose)
    stop = asyncio.Event()

    async def main() -> None:
        task = asyncio.create_task(run_demo(
            api_host=host, api_port=port, broker_port=broker_port, data_dir=data_dir,
            locale=locale, password=password, stop=stop,
        ))
        await _until_signal(task, stop.set)

    try:
        asyncio.run(main())
    except (OSError, ServiceStartError) as exc:
        raise _fail(f"{exc} (is another demo running? try --port / --broker-port)") from None


@app.command()
def replay(
    recording: Annotated[Path | None, typer.Argument(
        help="Recording (JSON Lines); the same as --input", show_default=False)] = None,
    input: Annotated[Path | None, typer.Option("--input", "-i", help="Recording (JSON Lines)")
                     ] = None,
    registry: Annotated[Path | None, typer.Option("--registry", "-r", help="Registry YAML")
                        ] = None,
    alerts_out: Annotated[Path | None, typer.Option(
        "--alerts-out", "-o", help="Alerts (JSON Lines)")] = None,
    quarantine_out: Annotated[Path | None, typer.Option(help="Refused input (JSON Lines)")] = None,
    locale: Annotated[str, typer.Option(help="Alert language: zh or en")] = "zh",
    sweep_interval: Annotated[float, typer.Option(help="Sweep spacing, s of event time")] = 5.0,
    publish: Annotated[str | None, typer.Option(
        help="Instead of detecting here, publish the recording to this broker "
             "(mqtt://[user:pw@]host:port), paced by --speed")] = None,
    speed: Annotated[float, typer.Option(
        help="With --publish: seconds of event time per wall second; 0 = unpaced")] = 1.0,
    client_id: Annotated[str, typer.Option(help="With --publish: MQTT client id")
                         ] = "riskwatch-replayer",
    progress: Annotated[bool, typer.Option(help="Progress on stderr")] = True,
    notifications_out: Annotated[Path | None, typer.Option(
        "--notifications-out", help="Also write who would be told what and when "
        "(JSON Lines), on event time")] = None,
    routing: Annotated[Path | None, typer.Option(
        help="Routing YAML for --notifications-out (default: enterprise screens only)")
    ] = None,
) -> None:
    """Run the pipeline over a recording as fast as possible and write the alerts, or
    with --publish send the recording to a broker at --speed times real time."""
    from gateway.replay import ReplayOptions, replay_recording
    from gateway.routing_file import RoutingError, load_routing

    if recording is not None and input is not None and recording != input:
        raise _fail("give the recording once: as an argument or as --input")
    source = recording or input
    if source is None:
        raise _fail("which recording? give it as an argument (or --input)")
    if not source.is_file():
        raise _fail(f"{source}: recording not found")
    if publish is not None:
        cli_tools.publish_recording_file(source, publish, speed, client_id, progress)
        return
    if registry is None or alerts_out is None:
        raise _fail("replay needs --registry and --alerts-out (or --publish URL to send the "
                    "recording to a broker)")
    if locale not in ("zh", "en"):
        raise _fail("--locale must be zh or en")
    try:
        loaded = load_registry(registry)
    except RegistryError as exc:
        raise _registry_failure(exc) from None
    if routing is not None and notifications_out is None:
        raise _fail("--routing only matters with --notifications-out")
    try:
        routes = load_routing(routing) if routing is not None else None
    except RoutingError as exc:
        raise _fail(str(exc)) from None
    options = ReplayOptions(locale=locale, sweep_interval_s=sweep_interval, progress=progress,
                            routing=routes)
    report = replay_recording(loaded, source, alerts_out, quarantine_out=quarantine_out,
                              notifications_out=notifications_out, options=options)
    told = (f"; {report.notifications} notifications -> {notifications_out}"
            if notifications_out is not None else "")
    typer.echo(
        f"replayed {report.lines} lines, {report.messages} messages, {report.samples} points "
        f"in {report.seconds:.2f} s ({report.points_per_second:,.0f} points/s); "
        f"{report.alerts} alerts -> {alerts_out}{told}; {report.rejected} refused",
        err=True,
    )
    if report.rejected:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(report.rejected_by_reason.items()))
        typer.echo(f"refused by reason: {reasons}", err=True)


# ------------------------------------------------------------------------ routing

routing_app = typer.Typer(
    help="Check a routing file (who is told of an alert, when it escalates) and see where "
         "an alert would go.",
    no_args_is_help=True,
)
app.add_typer(routing_app, name="routing")
app.add_typer(users_app, name="users")


def _routing_failure(exc: LocatedError) -> typer.Exit:
    """Every problem of the file, then exit 1: the file is wrong, not the command line."""
    problems = exc.errors or [exc]
    head = "" if len(problems) == 1 else f"{len(problems)} problems in the routing file:\n  "
    typer.secho("error: " + head + "\n  ".join(str(p) for p in problems), err=True,
                fg=typer.colors.RED)
    return typer.Exit(1)


@routing_app.command("check")
def routing_check(
    file: Annotated[Path, typer.Argument(help="Routing YAML", show_default=False)],
) -> None:
    """Validate a routing file; print its receivers per tier, escalation limits and tree.

    Exit 1 with every problem (file, line, key) when the file is invalid.
    """
    from gateway.routing_file import RoutingError, check_routing, describe_routing

    try:
        config, warnings = check_routing(file)
    except RoutingError as exc:
        raise _routing_failure(exc) from None
    for warning in warnings:
        typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)
    typer.echo(f"{file}: valid")
    typer.echo(describe_routing(config))


@routing_app.command("test")
def routing_test(
    file: Annotated[Path, typer.Argument(help="Routing YAML", show_default=False)],
    alert: Annotated[Path | None, typer.Option(
        "--alert", "-a", help="Alert JSON (CONTRACT.md §4), or JSON Lines of alerts such as "
                              "`replay --alerts-out` writes; the options below override it")
    ] = None,
    kind: Annotated[str | None, typer.Option(help="Alert kind [default: threshold]")] = None,
    level: Annotated[int | None, typer.Option(help="1 red .. 4 blue [default: 2]")] = None,
    region: Annotated[list[str] | None, typer.Option(
        help="Region code (6 or 9 digits); its parents are added, e.g. 370829101 also "
             "gives 370000, 370800, 370829; repeat for several")] = None,
    industry: Annotated[str | None, typer.Option(help="dust or metallurgy")] = None,
    enterprise: Annotated[str | None, typer.Option(help="Enterprise id")] = None,
) -> None:
    """Show where an alert would go: receivers per tier, when each tier is told, the
    timings and the matched routes (like Alertmanager's `amtool config routes test`)."""
    from alerting.routing import RoutingTree
    from gateway.routing_file import RoutingError, explain_decision, load_routing

    probes = _probe_alerts(alert, kind=kind, level=level, region=region, industry=industry,
                           enterprise=enterprise)
    try:
        tree = RoutingTree(load_routing(file))
    except RoutingError as exc:
        raise _routing_failure(exc) from None
    typer.echo("\n\n".join(explain_decision(probe, tree.route(probe)) for probe in probes))


def _probe_alerts(path: Path | None, *, kind: str | None, level: int | None,
                  region: list[str] | None, industry: str | None,
                  enterprise: str | None) -> list[Alert]:
    """The alerts to test: from the file, or one from the options, options winning."""
    import json

    from alerting.models import Alert
    from alerting.routing import region_path

    if level is not None and level not in (1, 2, 3, 4):
        raise _fail("--level must be 1 (red), 2 (orange), 3 (yellow) or 4 (blue)")
    if industry is not None and industry not in ("dust", "metallurgy"):
        raise _fail("--industry must be dust or metallurgy")
    for code in region or ():
        if not (code.isascii() and code.isdigit() and len(code) in (6, 9)):
            raise _fail(f"--region {code!r}: a region code has 6 or 9 digits")
    records: list[object] = [{}]
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise _fail(f"{path}: {exc.strerror or exc}") from None
        try:
            records = [json.loads(text)]
        except json.JSONDecodeError:
            try:
                records = [json.loads(line) for line in text.splitlines() if line.strip()]
            except json.JSONDecodeError as exc:
                raise _fail(f"{path}: not JSON or JSON Lines ({exc})") from None
    overrides: dict[str, object] = {
        key: value for key, value in (("kind", kind), ("level", level),
                                      ("industry", industry), ("enterprise_id", enterprise))
        if value is not None}
    if region:
        overrides["region"] = list(dict.fromkeys(c for code in region for c in region_path(code)))
    probes = []
    for i, record in enumerate(records, 1):
        if not isinstance(record, dict):
            raise _fail(f"{path}: alert {i} is not a JSON object")
        try:
            probes.append(Alert.from_json({**_PROBE, **record, **overrides}))
        except (TypeError, ValueError) as exc:
            raise _fail(f"{path}: alert {i}: {exc}") from None
    return probes


_PROBE: dict[str, object] = {
    "id": "routing-test", "enterprise_id": "", "device_id": None, "point": None,
    "kind": "threshold", "level": 2, "state": "firing",
    "started_at": "2026-01-01T00:00:00+08:00", "detected_at": "2026-01-01T00:00:00+08:00",
    "resolved_at": None, "title": "", "evidence": {},
}
"""What an alert under test has unless the file or the options say otherwise."""


app.command()(cli_tools.simulate)
app.command()(cli_tools.record)
app.command()(cli_tools.loadgen)
app.command()(cli_tools.score)


def main() -> None:  # pragma: no cover - console entry point
    app()

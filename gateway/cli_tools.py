"""Tester commands of the ``riskwatch`` CLI: simulate, record, publish, score, loadgen.

Kept apart from :mod:`gateway.cli` (the service commands) so each module stays short;
:mod:`gateway.cli` registers these functions on the one typer app.  Heavy imports stay
inside the commands so ``riskwatch --help`` is instant.  Long work reports progress on
stderr (results go to files or stdout), and Ctrl-C ends a recording or a publication
cleanly with what was done so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from gateway.config import BrokerAddress
    from simulators.replay_publisher import PublishStats

T = TypeVar("T")


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` in red on stderr; the caller raises the returned Exit."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


def broker_option(url: str) -> BrokerAddress:
    """A ``--broker``/``--publish`` URL as an address, or a one-line error (exit 2)."""
    from gateway.config import BrokerAddress

    try:
        return BrokerAddress.from_url(url)
    except ValueError as exc:
        raise fail(str(exc)) from None


def speed_option(speed: float) -> float | None:
    """``--speed``: seconds of event time per wall second; 0 means unpaced."""
    if speed < 0:
        raise fail("--speed must be positive (or 0 for as fast as the broker takes it)")
    return None if speed == 0 else speed


def on_stop_signals(stop: Callable[[], object]) -> None:
    """Call ``stop`` on Ctrl-C or SIGTERM (in the running loop) instead of raising, so
    the work can finish what it holds: a file, the outbox, buffered alerts."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop)


def run_until_interrupted(work: Callable[[asyncio.Event], Coroutine[Any, Any, T]]) -> T:
    """Run ``work(stop)``; Ctrl-C or SIGTERM sets ``stop`` so it can finish its file."""

    async def main() -> T:
        stop = asyncio.Event()
        on_stop_signals(stop.set)
        return await work(stop)

    return asyncio.run(main())


async def until_stopped(job: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """``job``'s result, or ``None`` if ``stop`` was set first (the job is cancelled)."""
    task = asyncio.ensure_future(job)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
        await asyncio.gather(task, stopper, return_exceptions=True)
    return task.result() if not task.cancelled() else None


def _status(line: str) -> None:
    """One updating status line on stderr (a terminal) or one line per report (a log)."""
    if sys.stderr.isatty():
        sys.stderr.write(f"\r{line}\x1b[K")
    else:
        sys.stderr.write(f"{line}\n")
    sys.stderr.flush()


def _end_status() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\n")


def publish_progress(stats: PublishStats) -> None:
    hours = stats.event_span_s / 3600.0
    _status(f"published {stats.messages:,} messages ({stats.per_second:,.0f}/s), "
            f"{hours:,.2f} h of event time, {stats.skipped:,} unusable lines skipped")


# ------------------------------------------------------------------------ simulate


def simulate(
    sites: Annotated[int, typer.Option(help="Enterprises to simulate")] = 10,
    days: Annotated[float, typer.Option(help="Span in days")] = 7.0,
    scenario: Annotated[list[str] | None, typer.Option(
        "--scenario", "-s",
        help="Scenario name or family (hidden_operation, fake_offline, abnormal, negative), "
             "'all' or 'none'; repeat for several")] = None,
    seed: Annotated[int, typer.Option(help="Same seed and options -> identical files")] = 0,
    start: Annotated[str | None, typer.Option(
        help="Start of the span, RFC 3339 (default Monday 2026-11-02 00:00+08:00) or 'now' "
             "(to feed a running service live)")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Recording to write (JSON Lines, CONTRACT.md §3)")] = None,
    labels: Annotated[Path | None, typer.Option(help="Ground truth (labels.jsonl)")] = None,
    registry_out: Annotated[Path | None, typer.Option(
        help="Registry of the simulated sites (YAML)")] = None,
    publish: Annotated[str | None, typer.Option(
        help="Also publish to this broker, mqtt://[user:pw@]host:port, paced by --speed")
    ] = None,
    speed: Annotated[float, typer.Option(
        help="With --publish: seconds of event time per wall second; 0 = unpaced")] = 1.0,
    clean_share: Annotated[float, typer.Option(help="Share of sites without scenarios")] = 0.3,
    progress: Annotated[bool, typer.Option(help="Progress on stderr")] = True,
) -> None:
    """Generate labelled telemetry of dust and metallurgy sites (offline, deterministic).

    Writes the recording, the labels and the registry; with --publish also sends the
    messages to a broker in arrival order at --speed times real time.  The models and
    scenarios are described in docs/simulators.md.
    """
    from simulators.fleet import write_registry
    from simulators.labels import write_labels
    from simulators.scenarios import expand
    from simulators.suite import SuiteOptions, build_suite, write_suite

    if out is None and publish is None:
        raise fail("nothing to do: give --out (a recording file) and/or --publish (a broker)")
    if out is not None and (labels is None or registry_out is None):
        raise fail("--out needs --labels and --registry-out beside it: a recording "
                   "without its registry and ground truth cannot be replayed or scored")
    names = tuple(scenario or ["all"])
    chosen = () if names == ("none",) else names
    address = broker_option(publish) if publish is not None else None
    pace = speed_option(speed)
    try:
        expand(chosen)
        options = SuiteOptions(sites=sites, days=days, scenarios=chosen, seed=seed,
                               start=_start_option(start), clean_share=clean_share)
        suite = build_suite(options)
    except (ValueError, KeyError) as exc:
        raise fail(str(exc).strip("'\"")) from None
    for enterprise, name in suite.skipped:
        typer.echo(f"note: {name} found no room at {enterprise} (span too short)", err=True)
    if out is not None and labels is not None and registry_out is not None:
        with _progress_bar(suite.message_count(), "writing", progress) as tick:
            stats = write_suite(suite, out, labels, registry_out, progress=tick)
        typer.echo(
            f"{sites} sites × {days:g} days: {stats.messages:,} messages, {stats.points:,} "
            f"points, {stats.labels} labels in {stats.seconds:.1f} s "
            f"({stats.points / max(stats.seconds, 1e-9):,.0f} points/s) -> {out}", err=True)
    else:
        if registry_out is not None:
            write_registry(suite.registry, registry_out)
        if labels is not None:
            write_labels(labels, suite.labels)
    if address is not None:
        _publish_suite(suite, address, pace, progress)


def _start_option(value: str | None) -> datetime | None:
    if value is None:
        return None
    if value == "now":
        now = datetime.now().astimezone()
        return now.replace(second=0, microsecond=0)
    try:
        start = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"--start {value!r}: expected RFC 3339 with an offset, or 'now'") from None
    if start.tzinfo is None:
        raise fail(f"--start {value!r} needs a UTC offset, e.g. 2026-11-02T00:00:00+08:00")
    return start


def _publish_suite(suite: Any, address: BrokerAddress, speed: float | None,
                   progress: bool) -> None:
    import orjson

    from simulators.mqtt_client import BrokerUnavailable
    from simulators.replay_publisher import publish_lines

    def lines() -> Iterator[bytes]:
        for topic, payload in suite.messages():
            yield orjson.dumps({"topic": topic, "payload": payload})

    async def work(stop: asyncio.Event) -> PublishStats | None:
        return await until_stopped(publish_lines(
            lines(), address, speed=speed, client_id="riskwatch-simulate",
            progress=publish_progress if progress else None), stop)

    try:
        stats = run_until_interrupted(work)
    except BrokerUnavailable as exc:
        raise fail(str(exc)) from None
    _end_status()
    if stats is None:
        typer.echo("interrupted: publishing stopped", err=True)
    else:
        typer.echo(f"published {stats.messages:,} messages in {stats.seconds:.1f} s "
                   f"to {address!r}", err=True)


@contextlib.contextmanager
def _progress_bar(total: int, what: str, shown: bool) -> Iterator[Callable[[int, int], None]]:
    from tqdm import tqdm

    bar = tqdm(total=total, unit="msg", unit_scale=True, desc=what, disable=not shown,
               file=sys.stderr)

    def tick(done: int, _total: int) -> None:
        bar.update(done - bar.n)

    try:
        yield tick
    finally:
        bar.close()


# -------------------------------------------------------------------- record, publish


def record(
    broker: Annotated[str, typer.Option(help="mqtt://[user:pw@]host:port to record from")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Recording to write (overwritten)")],
    topic: Annotated[list[str] | None, typer.Option(
        "--topic", "-t", help="Topic filter, repeatable (default rw/v1/#)")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds")] = None,
    max_messages: Annotated[int | None, typer.Option(help="Stop after this many messages")
                            ] = None,
    client_id: Annotated[str, typer.Option(help="MQTT client id (a persistent session)")
                         ] = "riskwatch-recorder",
    progress: Annotated[bool, typer.Option(help="Progress on stderr")] = True,
) -> None:
    """Record what a broker carries into a recording file until Ctrl-C (or a limit).

    Every message is kept, also those that are not valid JSON (base64, as
    ``payload_raw``); the file is flushed every second.
    """
    from simulators.mqtt_client import BrokerUnavailable
    from simulators.recorder import RecordStats, SubscriptionRefused
    from simulators.recorder import record as run_record

    address = broker_option(broker)
    if max_messages is not None and max_messages < 1:
        raise fail("--max-messages must be at least 1")
    if duration is not None and duration <= 0:
        raise fail("--duration must be positive")

    def show(stats: RecordStats) -> None:
        kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(stats.by_kind.items()))
        _status(f"recorded {stats.messages:,} messages, {stats.bytes / 1e6:,.1f} MB in "
                f"{stats.seconds:,.0f} s" + (f" ({kinds})" if kinds else ""))

    async def work(stop: asyncio.Event) -> RecordStats:
        return await run_record(address, out, client_id=client_id,
                                topics=tuple(topic or ["rw/v1/#"]), stop=stop,
                                max_messages=max_messages, duration_s=duration,
                                progress=show if progress else None)

    typer.echo(f"recording {address!r} into {out}; Ctrl-C to stop", err=True)
    try:
        stats = run_until_interrupted(work)
    except (BrokerUnavailable, SubscriptionRefused) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"{out}: {exc.strerror or exc}") from None
    _end_status()
    typer.echo(f"recorded {stats.messages:,} messages ({stats.bytes:,} bytes) in "
               f"{stats.seconds:.1f} s -> {out}", err=True)


def publish_recording_file(recording: Path, publish: str, speed: float,
                           client_id: str, progress: bool) -> None:
    """The ``replay --publish`` mode: send a recording to a broker, paced by event time."""
    from simulators.mqtt_client import BrokerUnavailable
    from simulators.replay_publisher import publish_recording

    address = broker_option(publish)
    pace = speed_option(speed)

    async def work(stop: asyncio.Event) -> PublishStats | None:
        return await until_stopped(publish_recording(
            recording, address, speed=pace, client_id=client_id,
            progress=publish_progress if progress else None), stop)

    try:
        stats = run_until_interrupted(work)
    except BrokerUnavailable as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"{recording}: {exc.strerror or exc}") from None
    _end_status()
    if stats is None:
        typer.echo("interrupted: publishing stopped", err=True)
        raise typer.Exit(130)
    typer.echo(f"published {stats.messages:,} messages in {stats.seconds:.1f} s "
               f"({stats.per_second:,.0f}/s) to {address!r}; {stats.skipped:,} unusable "
               f"lines skipped", err=True)


# ------------------------------------------------------------------------- loadgen


def loadgen(
    broker: Annotated[str, typer.Option(help="mqtt://[user:pw@]host:port")
                      ] = "mqtt://127.0.0.1:1883",
    enterprises: Annotated[int, typer.Option(help="Synthetic enterprises (ignored with "
                                                   "--registry)")] = 1000,
    registry: Annotated[Path | None, typer.Option(
        help="Publish as the devices of this registry instead of a synthetic fleet")] = None,
    duration: Annotated[float, typer.Option(help="Seconds to run")] = 30.0,
    interval_scale: Annotated[float, typer.Option(
        help="Divide every device's expected interval by this (compress time)")] = 1.0,
    records_per_message: Annotated[int, typer.Option(help="Records batched per message")] = 1,
    connections: Annotated[int, typer.Option(help="MQTT connections to spread devices over")
                           ] = 4,
    seed: Annotated[int, typer.Option(help="Phases and values")] = 0,
) -> None:
    """Publish a fleet's telemetry at its configured intervals and report the rate.

    One line per second on stderr (achieved vs. target msg/s), then a summary on stdout.
    Time stamps are wall time, so a running service accepts the data.
    """
    from gateway.registry import RegistryError, load_registry
    from simulators.loadgen import LoadStats, run_load
    from simulators.mqtt_client import BrokerUnavailable

    address = broker_option(broker)
    fleet = None
    if registry is not None:
        try:
            fleet = load_registry(registry).spec
        except RegistryError as exc:
            raise fail(str(exc)) from None

    async def work(stop: asyncio.Event) -> LoadStats | None:
        return await until_stopped(run_load(
            address, enterprises, duration_s=duration, interval_scale=interval_scale,
            records_per_message=records_per_message, connections=connections,
            registry=fleet, seed=seed, report=lambda line: typer.echo(line, err=True)), stop)

    try:
        stats = run_until_interrupted(work)
    except BrokerUnavailable as exc:
        raise fail(str(exc)) from None
    except ValueError as exc:
        raise fail(str(exc)) from None
    if stats is None:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130)
    typer.echo(f"{stats.messages:,} messages ({stats.points:,} points) in {stats.seconds:.1f} s: "
               f"{stats.messages_per_s:,.0f} msg/s, {stats.points_per_s:,.0f} points/s; target "
               f"{stats.target_per_s:,.0f} msg/s; errors {stats.errors}, behind {stats.behind:,}")


# --------------------------------------------------------------------------- score


def score(
    labels: Annotated[Path, typer.Option("--labels", "-l", help="Ground truth (labels.jsonl)")],
    alerts: Annotated[Path, typer.Option("--alerts", "-a", help="Alerts (JSON Lines)")],
    registry: Annotated[Path | None, typer.Option(
        help="Registry of the run: every enterprise in it counts, also the quiet ones")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table")] = False,
) -> None:
    """Score alerts against labels: recall, precision, delays, false alerts, alarm rates.

    The matching rules are in docs/scoring.md.
    """
    from gateway.registry import RegistryError, load_registry
    from simulators.labels import read_labels
    from simulators.score_report import format_table, report_json
    from simulators.scoring import load_alerts
    from simulators.scoring import score as run_score

    for path in (labels, alerts):
        if not path.is_file():
            raise fail(f"{path}: file not found")
    try:
        truth = read_labels(labels)
        raised = load_alerts(alerts)
        enterprises = None
        if registry is not None:
            enterprises = [e.id for e in load_registry(registry).spec.enterprises]
    except RegistryError as exc:
        raise fail(str(exc)) from None
    except ValueError as exc:
        raise fail(str(exc)) from None
    report = run_score(truth, raised, enterprises=enterprises)
    if as_json:
        sys.stdout.buffer.write(report_json(report))
        sys.stdout.buffer.flush()
    else:
        typer.echo(format_table(report), nl=False)

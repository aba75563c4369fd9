"""Tester commands of the ``riskwatch`` CLI: simulate, record, score, load generation.

Kept apart from :mod:`gateway.cli` (the service commands) so each module stays short;
:mod:`gateway.cli` registers these functions on the one typer app.  Heavy imports stay
inside the commands so ``riskwatch --help`` is instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` in red on stderr; the caller raises the returned Exit."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


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

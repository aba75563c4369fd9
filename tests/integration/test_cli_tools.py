"""The tester commands as a tester runs them: real processes against a real Mosquitto.

``simulate --publish`` and ``replay --publish`` feed ``record``; what is recorded must be
exactly what ``simulate --out`` writes for the same seed (as a multiset of messages:
QoS 1 keeps each publisher's order, nothing more).  A private broker, configured with
the queue limit of ``deploy/mosquitto/riskwatch.conf``, keeps retained messages of
other tests out of the recordings.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.helpers import PrivateBroker, free_port

pytestmark = pytest.mark.integration

SIM = ["--sites", "2", "--days", "0.2", "--seed", "11", "--scenario", "all"]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    private = PrivateBroker(tmp_path / "broker", free_port(),
                            extra_config=("max_queued_messages 200000",))
    private.start()
    yield f"mqtt://127.0.0.1:{private.port}"
    private.stop()


def riskwatch(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


class Recorder:
    """``riskwatch record`` in the background, stopped with Ctrl-C like a tester would."""

    def __init__(self, broker: str, out: Path) -> None:
        self.out = out
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "record", "--broker", broker, "--out", str(out),
             "--client-id", f"rec-{out.stem}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert self.process.stderr is not None
        # The banner is printed before connecting; give the subscription a moment.
        assert "recording" in self.process.stderr.readline()
        time.sleep(1.0)

    def wait_for(self, messages: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.out.exists() and _line_count(self.out) >= messages:
                return
            time.sleep(0.2)

    def stop(self) -> str:
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=20)
        assert self.process.returncode == 0, err
        return err


def _line_count(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def messages(path: Path) -> Counter[tuple[str, bytes]]:
    out: Counter[tuple[str, bytes]] = Counter()
    with path.open("rb") as f:
        for line in f:
            record = orjson.loads(line)
            out[record["topic"], orjson.dumps(record["payload"])] += 1
    return out


def test_simulate_publish_record_and_replay_publish_round_trip(
    tmp_path: Path, broker: str
) -> None:
    reference = tmp_path / "ref.jsonl"
    made = riskwatch("simulate", *SIM, "--out", str(reference), "--labels",
                     str(tmp_path / "labels.jsonl"), "--registry-out", str(tmp_path / "reg.yaml"),
                     "--no-progress")
    assert made.returncode == 0, made.stderr
    expected = messages(reference)
    total = sum(expected.values())
    assert total > 500

    recorder = Recorder(broker, tmp_path / "live.jsonl")
    sent = riskwatch("simulate", *SIM, "--publish", broker, "--speed", "0", "--no-progress")
    assert sent.returncode == 0, sent.stderr
    assert f"published {total:,} messages" in sent.stderr
    recorder.wait_for(total)
    summary = recorder.stop()
    assert f"recorded {total:,} messages" in summary
    assert messages(recorder.out) == expected

    # The recording, published again, is recorded again unchanged.
    again = Recorder(broker, tmp_path / "again.jsonl")
    replayed = riskwatch("replay", str(recorder.out), "--publish", broker, "--speed", "0",
                         "--no-progress")
    assert replayed.returncode == 0, replayed.stderr
    assert f"published {total:,} messages" in replayed.stderr
    again.wait_for(total)
    again.stop()
    assert messages(again.out) == expected


def test_replay_publish_paces_by_event_time(tmp_path: Path, broker: str) -> None:
    recording = tmp_path / "paced.jsonl"
    base = 1_795_478_400_000
    with recording.open("wb") as f:
        for k in range(5):  # 4 s of event time
            f.write(orjson.dumps({"topic": "rw/v1/E1/D1/telemetry",
                                  "payload": {"ts": base + 1000 * k, "values": {"x": k}}}) + b"\n")
    began = time.monotonic()
    result = riskwatch("replay", str(recording), "--publish", broker, "--speed", "2",
                       "--no-progress")
    elapsed = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    assert "published 5 messages" in result.stderr
    assert elapsed >= 2.0  # 4 s of event time at 2x cannot take less than 2 s


def test_loadgen_reports_rates_and_record_counts_them(tmp_path: Path, broker: str) -> None:
    recorder = Recorder(broker, tmp_path / "load.jsonl")
    result = riskwatch("loadgen", "--broker", broker, "--enterprises", "5", "--duration", "3",
                       "--interval-scale", "10")
    summary = recorder.stop()
    assert result.returncode == 0, result.stderr
    assert "t=1s" in result.stderr  # one rate line per second
    assert "errors 0" in result.stdout
    sent = int(result.stdout.split(" messages")[0].replace(",", ""))
    assert sent > 0
    assert f"recorded {sent:,} messages" in summary


def test_publishing_to_an_unreachable_broker_is_one_clear_line(tmp_path: Path) -> None:
    recording = tmp_path / "r.jsonl"
    recording.write_bytes(b'{"topic": "rw/v1/E1/D1/event", "payload": {"ts": 1}}\n')
    port = free_port()
    result = riskwatch("replay", str(recording), "--publish", f"mqtt://127.0.0.1:{port}")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith("error: cannot publish to the broker")
    assert "Traceback" not in result.stderr
    recorded = riskwatch("record", "--broker", f"mqtt://127.0.0.1:{port}", "--out",
                         str(tmp_path / "x.jsonl"))
    assert recorded.returncode == 2
    assert "error: cannot record from the broker" in recorded.stderr

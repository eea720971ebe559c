"""Load generation with wrk, one run per measurement.

Each run gets a Lua script assembled here: the request part, which sets
headers or builds each request, and a reporting part, whose `done` hook
prints the summary and exact latency percentiles as one JSON line.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

# A run that has not ended this many seconds after its duration is killed.
RUN_SLACK_S = 30
# wrk counts a request that takes longer than this as a timeout error.
REQUEST_TIMEOUT = "5s"

_REPORT_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"status_errors":%d,"timeouts":%d,' ..
    '"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,"max_us":%.0f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


def lua_string(value: str) -> str:
    """Quote `value` as a Lua string literal."""
    return json.dumps(value)


def headers_lua(headers: dict[str, str]) -> str:
    return "".join(
        f"wrk.headers[{lua_string(name)}] = {lua_string(value)}\n" for name, value in headers.items()
    )


@dataclass
class Request:
    """What one scenario sends: a fixed request, or Lua that builds each one."""

    path: str
    method: str = "GET"
    headers: dict[str, str] | None = None
    body: str | None = None
    # Lua defining `request = function() ... end`, used instead of the
    # fixed path, method and body.
    lua: str | None = None

    def script(self) -> str:
        parts = [headers_lua(self.headers or {})]
        if self.lua:
            parts.append(self.lua)
        else:
            parts.append(f"wrk.method = {lua_string(self.method)}\n")
            parts.append(f"wrk.path = {lua_string(self.path)}\n")
            if self.body is not None:
                parts.append(f"wrk.body = {lua_string(self.body)}\n")
        parts.append(_REPORT_LUA)
        return "".join(parts)


@dataclass
class Result:
    """The summary of one wrk run."""

    requests: int
    duration_s: float
    bytes: int
    socket_errors: int
    status_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def bytes_per_response(self) -> float:
        return self.bytes / self.requests if self.requests else 0.0


class LoadError(RuntimeError):
    """wrk failed or printed no summary."""


def run_wrk(
    base_url: str,
    request: Request,
    connections: int,
    duration_s: float,
    script_path: Path,
) -> Result:
    """Run wrk with one thread and `connections` connections for
    `duration_s` seconds and return its summary."""
    script_path.write_text(request.script())
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration_s:g}s",
        f"--timeout={REQUEST_TIMEOUT}",
        "-s",
        str(script_path),
        base_url + request.path,
    ]
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=duration_s + RUN_SLACK_S
        )
    except subprocess.TimeoutExpired as error:
        raise LoadError(f"wrk did not finish within {duration_s + RUN_SLACK_S:g} s: {' '.join(command)}") from error
    line = next(
        (line for line in completed.stdout.splitlines() if line.startswith("BENCH_JSON ")), None
    )
    if completed.returncode != 0 or line is None:
        raise LoadError(
            f"wrk exited with status {completed.returncode} and no summary: {' '.join(command)}\n"
            + completed.stdout[-2000:]
            + completed.stderr[-2000:]
        )
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    return Result(
        requests=raw["requests"],
        duration_s=raw["duration_us"] / 1e6,
        bytes=raw["bytes"],
        socket_errors=raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"],
        status_errors=raw["status_errors"],
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
    )

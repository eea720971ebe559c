"""Starting and stopping the benchmark's servers on loopback.

Every server runs in the foreground as a child of this process, so its PID
is known and it is stopped by that PID when the run ends, whatever the
reason. Each wait for readiness is bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import string
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# A server that is not ready within this many seconds fails the run.
READY_TIMEOUT_S = 60.0
# A server still running this long after its stop signal gets SIGKILL.
STOP_TIMEOUT_S = 10.0


class StartError(RuntimeError):
    """A server exited or was not ready in time."""


def free_port(host: str) -> int:
    """Return a TCP port that is free on `host` at the time of the call."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def render(template: Path, destination: Path, values: dict[str, object]) -> Path:
    """Write `template` with its `${name}` placeholders replaced by `values`."""
    text = string.Template(template.read_text()).substitute(
        {name: str(value) for name, value in values.items()}
    )
    destination.write_text(text)
    return destination


def port_open(host: str, port: int) -> bool:
    """Tell whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Service:
    """One server process, its log file and how to stop it."""

    name: str
    process: subprocess.Popen
    log_path: Path
    stop_signal: int = signal.SIGTERM

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def rss_kib(self) -> int:
        """Return the resident set size (VmRSS) in KiB."""
        return _status_field(self.pid, "VmRSS")

    def peak_rss_kib(self) -> int:
        """Return the peak resident set size (VmHWM) in KiB."""
        return _status_field(self.pid, "VmHWM")


def _status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise KeyError(f"{name} not found in /proc/{pid}/status")


@dataclass
class Services:
    """The servers started so far; `stop_all` stops them in reverse order."""

    log_dir: Path
    started: list[Service] = field(default_factory=list)

    def start(
        self,
        name: str,
        command: list[str],
        env: dict[str, str] | None = None,
        stop_signal: int = signal.SIGTERM,
        cwd: Path | None = None,
    ) -> Service:
        log_path = self.log_dir / f"{name}.log"
        log = open(log_path, "ab")
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        log.close()
        service = Service(name, process, log_path, stop_signal)
        self.started.append(service)
        return service

    def wait_for_port(self, service: Service, host: str, port: int) -> None:
        """Wait until `service` accepts connections on host:port."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not port_open(host, port):
            if not service.running():
                raise StartError(
                    f"{service.name} exited with status {service.process.returncode} "
                    f"before listening on {host}:{port}. Last lines of {service.log_path}:\n"
                    + service.log_tail()
                )
            if time.monotonic() > deadline:
                raise StartError(
                    f"{service.name} was not listening on {host}:{port} within "
                    f"{READY_TIMEOUT_S:.0f} s. Last lines of {service.log_path}:\n"
                    + service.log_tail()
                )
            time.sleep(0.05)

    def stop(self, service: Service) -> None:
        if service.running():
            service.process.send_signal(service.stop_signal)
            try:
                service.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print(f"bench: {service.name} (pid {service.pid}) ignored its stop signal; sending SIGKILL")
                service.process.kill()
                service.process.wait(timeout=STOP_TIMEOUT_S)
        if service in self.started:
            self.started.remove(service)

    def stop_all(self) -> None:
        for service in reversed(list(self.started)):
            try:
                self.stop(service)
            except Exception as error:  # keep stopping the others
                print(f"bench: cannot stop {service.name} (pid {service.pid}): {error}")

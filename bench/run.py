"""The portcullis benchmark: every target on loopback, measured in one run.

scripts/bench.sh installs the tools and builds the release binaries, then
runs this file. It starts the servers, signs in once per auth proxy, runs
each scenario for a fixed time after a warm-up with the targets alternated
over several rounds, and writes results.json, results.md and chart.svg to
the output folder. A full run also rewrites the generated part of
BENCHMARKS.md. Every server it starts is stopped by PID when it ends.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import load
import login
import services
from chart import render_chart
from report import (
    MIB,
    Goal,
    Measurement,
    format_ms,
    format_rate,
    format_ratio,
    markdown_table,
    p99_excess_ms,
    ratio,
    summarise,
)

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "bench" / "conf"
PROXY_HOST = "127.0.0.1"
# The provider has an address of its own because cookie jars ignore ports.
IDP_HOST = "127.0.0.2"
CLIENT_ID = "portcullis"
CLIENT_SECRET = "portcullis-dev-secret"
SESSION_COOKIE = "_portcullis"
APACHE_COOKIE = "mod_auth_openidc_session"
POSTGRES_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
# Each HTTP request the harness sends itself gives up after this long.
CHECK_TIMEOUT_S = 10.0
# Connections for the SCIM scenarios: provisioning clients such as Okta
# send a few requests at a time, not hundreds.
SCIM_CONNECTIONS = 4
# Okta's import page size.
IMPORT_PAGE = 100
PAGE_MARKER_START = "<!-- bench:results:start -->"
PAGE_MARKER_END = "<!-- bench:results:end -->"

TARGET_LABELS = {
    "upstream": "upstream direct (nginx static)",
    "nginx": "nginx, plain reverse proxy",
    "pingora": "bare Pingora pass-through",
    "apache": "Apache + mod_auth_openidc, Redis",
    "pc-redis": "portcullis, Redis sessions",
    "pc-memory": "portcullis, memory sessions",
    "pc-public": "portcullis, public path",
    "scim-sqlite": "portcullis SCIM, SQLite",
    "scim-postgres": "portcullis SCIM, PostgreSQL",
}


@dataclass
class Settings:
    rounds: int
    duration_s: int
    warmup_s: int
    users: int
    sessions: int
    output: Path
    update_page: bool
    quick: bool


@dataclass
class Scenario:
    """One HTTP scenario: what is sent, at what concurrency, to which targets."""

    id: str
    title: str
    connections: int
    expected_status: int
    targets: list[str]
    # Builds the request for one target.
    request_for: object
    kind: str = "proxy"


@dataclass
class Run:
    """Everything the run started and measured."""

    settings: Settings
    run_dir: Path
    servers: services.Services
    ports: dict[str, int] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    portcullis_pids: dict[str, services.Service] = field(default_factory=dict)
    scim_tokens: dict[str, str] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    imports: list[dict] = field(default_factory=list)
    memory: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    postgres_schema: str | None = None
    # The SCIM scenarios, for the results table and chart.
    scim_scenarios: list[Scenario] = field(default_factory=list)

    def url(self, target: str) -> str:
        return f"http://{PROXY_HOST}:{self.ports[target]}"


def log(message: str) -> None:
    print(f"bench: {message}", flush=True)


# ---------------------------------------------------------------- servers


def start_redis(run: Run) -> None:
    port = run.ports["redis"]
    service = run.servers.start(
        "redis",
        [
            "redis-server", "--bind", PROXY_HOST, "--port", str(port), "--save", "",
            "--appendonly", "no", "--daemonize", "no", "--dir", str(run.run_dir),
        ],
    )
    run.servers.wait_for_port(service, PROXY_HOST, port)


def start_idp(run: Run) -> None:
    callbacks = [
        f"http://{PROXY_HOST}:{run.ports[name]}/oauth2/callback"
        for name in ("apache", "pc-redis", "pc-memory", "rss-redis", "rss-memory")
    ]
    service = run.servers.start(
        "idp",
        ["node", str(REPO / "tests" / "fixtures" / "idp.mjs")],
        env={
            "IDP_HOST": IDP_HOST,
            "IDP_PORT": str(run.ports["idp"]),
            "IDP_REDIRECT_URIS": ",".join(callbacks),
            "IDP_POST_LOGOUT_URIS": f"http://{PROXY_HOST}:{run.ports['pc-redis']}/",
            "IDP_CLIENT_ID": CLIENT_ID,
            "IDP_CLIENT_SECRET": CLIENT_SECRET,
        },
    )
    run.servers.wait_for_port(service, IDP_HOST, run.ports["idp"])


def start_nginx(run: Run) -> None:
    big = run.run_dir / "big.bin"
    big.write_bytes(bytes(range(256)) * (MIB // 256))
    for name, template, extra in (
        ("upstream", "nginx-upstream.conf", {}),
        ("nginx", "nginx-proxy.conf", {"workers": 2, "upstream_port": run.ports["upstream"]}),
    ):
        conf = services.render(
            CONF / template,
            run.run_dir / template,
            {"run_dir": run.run_dir, "port": run.ports[name], **extra},
        )
        service = run.servers.start(
            f"nginx-{name}", ["nginx", "-c", str(conf), "-p", str(run.run_dir)], stop_signal=signal.SIGQUIT
        )
        run.servers.wait_for_port(service, PROXY_HOST, run.ports[name])


def start_apache(run: Run) -> None:
    conf = services.render(
        CONF / "httpd.conf",
        run.run_dir / "httpd.conf",
        {
            "run_dir": run.run_dir,
            "port": run.ports["apache"],
            "upstream_port": run.ports["upstream"],
            "redis_port": run.ports["redis"],
            "issuer": f"http://{IDP_HOST}:{run.ports['idp']}",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    service = run.servers.start("apache", ["apache2", "-f", str(conf), "-DFOREGROUND"])
    run.servers.wait_for_port(service, PROXY_HOST, run.ports["apache"])


def portcullis_binary() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release" / "portcullis"


def example_binary(name: str) -> Path:
    return portcullis_binary().parent / "examples" / name


def start_passthrough(run: Run) -> None:
    """Start the bare Pingora proxy, the floor under portcullis's cost."""
    port = run.ports["pingora"]
    service = run.servers.start(
        "pingora",
        [str(example_binary("bench_passthrough")), f"{PROXY_HOST}:{port}", f"{PROXY_HOST}:{run.ports['upstream']}"],
        stop_signal=signal.SIGINT,
    )
    run.servers.wait_for_port(service, PROXY_HOST, port)


def portcullis_env(run: Run, name: str, store: str, directory: tuple[str, str] | None = None) -> dict[str, str]:
    port = run.ports[name]
    backend, url = directory or ("sqlite", f"sqlite://{run.run_dir / (name + '.db')}")
    return {
        "PORTCULLIS_SERVER__LISTEN": f"{PROXY_HOST}:{port}",
        "PORTCULLIS_SERVER__PUBLIC_URL": f"http://{PROXY_HOST}:{port}",
        "PORTCULLIS_SERVER__ADMIN_LISTEN": f"{PROXY_HOST}:{run.ports[name + '-admin']}",
        "PORTCULLIS_UPSTREAM__URL": f"http://{PROXY_HOST}:{run.ports['upstream']}",
        "PORTCULLIS_OIDC__ISSUER": f"http://{IDP_HOST}:{run.ports['idp']}",
        "PORTCULLIS_SESSION__STORE": store,
        "PORTCULLIS_SESSION__REDIS_URL": f"redis://{PROXY_HOST}:{run.ports['redis']}",
        "PORTCULLIS_DIRECTORY__BACKEND": backend,
        "PORTCULLIS_DIRECTORY__URL": url,
        # Every benchmark client is 127.0.0.1, and the scenarios start far
        # more logins than the per-address default of 60 at once.
        "PORTCULLIS_SESSION__LOGIN_STARTS_PER_MINUTE": "0",
    }


def start_portcullis(run: Run, name: str, store: str, directory: tuple[str, str] | None = None) -> services.Service:
    """Start portcullis as `name` and wait until its /readyz is 200."""
    env = portcullis_env(run, name, store, directory)
    service = run.servers.start(
        name,
        [str(portcullis_binary()), "serve", "--config", str(CONF / "portcullis.toml")],
        env=env,
        # SIGTERM would wait out the drain and grace periods.
        stop_signal=signal.SIGINT,
    )
    wait_until_ready(service, f"http://{PROXY_HOST}:{run.ports[name + '-admin']}/readyz")
    run.portcullis_pids[name] = service
    return service


def wait_until_ready(service: services.Service, url: str) -> None:
    deadline = time.monotonic() + services.READY_TIMEOUT_S
    while True:
        try:
            status, _ = http_get(url)
            if status == 200:
                return
        except OSError:
            pass
        if not service.running():
            raise services.StartError(f"{service.name} exited before it was ready:\n{service.log_tail()}")
        if time.monotonic() > deadline:
            raise services.StartError(
                f"{service.name}: {url} was not 200 within {services.READY_TIMEOUT_S:.0f} s:\n{service.log_tail()}"
            )
        time.sleep(0.1)


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=CHECK_TIMEOUT_S)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request("GET", target or "/", headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# ---------------------------------------------------------------- scenarios

SMALL_PATH = "/small"
PUBLIC_PATH = "/public/small"
API_HEADERS = {"Accept": "application/json", "X-Requested-With": "XMLHttpRequest"}
NAVIGATION_HEADERS = {"Accept": "text/html"}


def session_request(run: Run, target: str, path: str) -> load.Request:
    """Build the request of `target` for `path`, with its session cookie
    except for the upstream, nginx and the public path, which need none."""
    if target == "apache":
        return load.Request(path, headers={"Cookie": f"{APACHE_COOKIE}={run.cookies['apache']}"})
    if target in ("pc-redis", "pc-memory"):
        return load.Request(path, headers={"Cookie": f"{SESSION_COOKIE}={run.cookies[target]}"})
    if target == "pc-public":
        return load.Request(PUBLIC_PATH if path == SMALL_PATH else path)
    return load.Request(path)


def proxy_scenarios(run: Run) -> list[Scenario]:
    all_targets = ["upstream", "nginx", "pingora", "apache", "pc-redis", "pc-memory", "pc-public"]
    auth_targets = ["apache", "pc-redis", "pc-memory"]
    scenarios = [
        Scenario(
            f"get-c{connections}",
            f"small GET with a session, {connections} connection{'s' if connections > 1 else ''}",
            connections,
            200,
            all_targets,
            lambda target: session_request(run, target, SMALL_PATH),
        )
        for connections in (1, 32, 256)
    ]
    scenarios.append(
        Scenario(
            "big",
            "1 MiB response with a session, 32 connections",
            32,
            200,
            ["upstream", "nginx", "pingora", "apache", "pc-redis", "pc-memory"],
            lambda target: session_request(run, target, "/big"),
        )
    )
    scenarios.append(
        Scenario(
            "no-session-401",
            "API request without a session (401), 32 connections",
            32,
            401,
            auth_targets,
            lambda target: load.Request(SMALL_PATH, headers=API_HEADERS),
        )
    )
    # NOTE: the memory store is left out: each redirect stores a login flow
    # for 10 minutes, and a few seconds at full speed fill its 100,000 slots,
    # after which every start also evicts the oldest flow.
    scenarios.append(
        Scenario(
            "no-session-302",
            "navigation without a session (302 to the provider), 32 connections",
            32,
            302,
            ["apache", "pc-redis"],
            lambda target: load.Request(SMALL_PATH, headers=NAVIGATION_HEADERS),
        )
    )
    return scenarios


def base_target(target: str) -> str:
    return "pc-redis" if target == "pc-public" else target


def check_once(run: Run, scenario: Scenario, target: str) -> None:
    """Send the scenario's request once and check its status, so that a
    lost session cannot pass for a fast authenticated request."""
    request: load.Request = scenario.request_for(target)
    if request.lua:
        return
    status, body = http_get(run.url(base_target(target)) + request.path, request.headers)
    if status != scenario.expected_status:
        raise RuntimeError(
            f"{scenario.id} on {target}: expected status {scenario.expected_status}, got {status}: {body[:200]!r}"
        )


def measure(run: Run, scenario: Scenario, target: str, round_number: int) -> Measurement:
    settings = run.settings
    url = run.url(base_target(target))
    script = run.run_dir / f"wrk-{scenario.id}-{target}.lua"
    # The request is built again for each wrk run, so requests that create
    # users get names that no earlier run used.
    if settings.warmup_s > 0:
        load.run_wrk(url, scenario.request_for(target), scenario.connections, settings.warmup_s, script)
    result = load.run_wrk(url, scenario.request_for(target), scenario.connections, settings.duration_s, script)
    # wrk counts every status outside 2xx and 3xx as an error.
    unexpected = 0 if scenario.expected_status >= 400 else result.status_errors
    measurement = Measurement(
        scenario=scenario.id,
        target=target,
        round=round_number,
        requests_per_s=result.requests_per_s,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        socket_errors=result.socket_errors,
        unexpected_statuses=unexpected,
    )
    log(
        f"round {round_number} {scenario.id:<15} {target:<13} {result.requests_per_s:>10,.0f} req/s "
        f"p50 {result.p50_ms:6.2f} ms p99 {result.p99_ms:6.2f} ms"
        + (f"  errors {result.socket_errors + unexpected}" if result.socket_errors + unexpected else "")
    )
    return measurement


def run_rounds(run: Run, scenarios: list[Scenario]) -> None:
    """Measure every scenario on every target, once per round. The target
    order rotates from round to round, so no target always runs first."""
    for scenario in scenarios:
        for target in scenario.targets:
            check_once(run, scenario, target)
    for round_number in range(1, run.settings.rounds + 1):
        for scenario in scenarios:
            shift = (round_number - 1) % len(scenario.targets)
            order = scenario.targets[shift:] + scenario.targets[:shift]
            for target in order:
                run.measurements.append(measure(run, scenario, target, round_number))
        for scenario in scenarios:
            for target in scenario.targets:
                check_once(run, scenario, target)


# ---------------------------------------------------------------- SCIM


def create_postgres_schema(run: Run) -> str:
    name = f"portcullis_bench_{os.getpid()}_{int(time.time())}"
    psql(f"CREATE SCHEMA {name}")
    run.postgres_schema = name
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}options=-c%20search_path%3D{name}"


def drop_postgres_schema(run: Run) -> None:
    if run.postgres_schema:
        psql(f"DROP SCHEMA IF EXISTS {run.postgres_schema} CASCADE")
        run.postgres_schema = None


def psql(statement: str) -> None:
    subprocess.run(
        ["psql", POSTGRES_URL, "-v", "ON_ERROR_STOP=1", "-q", "-c", statement],
        check=True,
        timeout=60,
    )


def seed_directory(backend: str, url: str, users: int) -> None:
    seeder = example_binary("bench_seed")
    started = time.monotonic()
    subprocess.run([str(seeder), backend, url, str(users)], check=True, timeout=1800)
    log(f"seeded {users:,} users in {backend} in {time.monotonic() - started:.1f} s")


def create_token(run: Run, name: str, backend: str, url: str) -> str:
    env = {**os.environ, **portcullis_env(run, name, "memory", (backend, url))}
    completed = subprocess.run(
        [str(portcullis_binary()), "token", "create", "--config", str(CONF / "portcullis.toml"), "--name", "bench"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return completed.stdout.strip()


def filter_lua(users: int) -> str:
    """Lua that looks up a random seeded user by userName in each request."""
    return f"""
math.randomseed(os.time())
request = function()
  local n = math.random(0, {users - 1})
  local path = string.format("/scim/v2/Users?filter=userName%%20eq%%20%%22user%06d%%40example.test%%22", n)
  return wrk.format("GET", path)
end
"""


def create_lua(label: str) -> str:
    """Lua that creates a new user, with a name unique in the run, per request."""
    return f"""
local counter = 0
request = function()
  counter = counter + 1
  local name = string.format("bench-{label}-%d@example.test", counter)
  local body = '{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],' ..
    '"userName":"' .. name .. '","name":{{"givenName":"Bench","familyName":"User"}},' ..
    '"emails":[{{"value":"' .. name .. '","type":"work","primary":true}}],"active":true}}'
  return wrk.format("POST", "/scim/v2/Users", nil, body)
end
"""


def scim_headers(run: Run, target: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {run.scim_tokens[target]}", "Content-Type": "application/scim+json"}


def run_import(run: Run, target: str, round_number: int) -> dict:
    """Page through every user like an Okta import; return its timing."""
    connection = http.client.HTTPConnection(PROXY_HOST, run.ports[target], timeout=CHECK_TIMEOUT_S)
    headers = scim_headers(run, target)
    ids: set[str] = set()
    started = time.monotonic()
    start_index, total = 1, None
    while total is None or start_index <= total:
        connection.request("GET", f"/scim/v2/Users?startIndex={start_index}&count={IMPORT_PAGE}", headers=headers)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"import from {target}: status {response.status} at startIndex {start_index}")
        page = json.loads(body)
        total = page["totalResults"]
        ids.update(resource["id"] for resource in page.get("Resources", []))
        start_index += IMPORT_PAGE
    elapsed = time.monotonic() - started
    connection.close()
    if len(ids) != total:
        raise RuntimeError(f"import from {target}: {len(ids)} distinct ids for {total} users")
    log(f"round {round_number} import          {target:<13} {total:,} users in {elapsed:.2f} s")
    return {"target": target, "round": round_number, "users": total, "seconds": elapsed}


def run_scim(run: Run) -> None:
    users = run.settings.users
    sqlite_url = f"sqlite://{run.run_dir / 'scim.db'}"
    (run.run_dir / "scim.db").unlink(missing_ok=True)
    postgres_url = create_postgres_schema(run)
    backends = {"scim-sqlite": ("sqlite", sqlite_url), "scim-postgres": ("postgres", postgres_url)}
    for target, (backend, url) in backends.items():
        seed_directory(backend, url, users)
        run.scim_tokens[target] = create_token(run, target, backend, url)
        start_portcullis(run, target, "memory", (backend, url))
    targets = list(backends)

    lookup = Scenario(
        "scim-filter",
        f'SCIM GET /Users?filter=userName eq "…", {users:,} users, {SCIM_CONNECTIONS} connections',
        SCIM_CONNECTIONS,
        200,
        targets,
        lambda target: load.Request("/scim/v2/Users", headers=scim_headers(run, target), lua=filter_lua(users)),
        kind="scim",
    )
    run_rounds(run, [lookup])
    for round_number in range(1, run.settings.rounds + 1):
        for target in targets if round_number % 2 else reversed(targets):
            run.imports.append(run_import(run, target, round_number))
    create = Scenario(
        "scim-create",
        f"SCIM POST /Users, {users:,}+ users, {SCIM_CONNECTIONS} connections",
        SCIM_CONNECTIONS,
        201,
        targets,
        lambda target: load.Request(
            "/scim/v2/Users",
            headers=scim_headers(run, target),
            lua=create_lua(f"{target}-{time.monotonic_ns()}"),
        ),
        kind="scim",
    )
    run_rounds(run, [create])
    run.scim_scenarios = [lookup, create]
    for target in targets:
        run.servers.stop(run.portcullis_pids.pop(target))
    drop_postgres_schema(run)


# ---------------------------------------------------------------- memory


def use_sessions(run: Run, target: str, cookies: list[str]) -> None:
    """Send one authenticated request with each session and check it is 200."""

    def worker(share: list[str]) -> None:
        connection = http.client.HTTPConnection(PROXY_HOST, run.ports[target], timeout=CHECK_TIMEOUT_S)
        for value in share:
            connection.request("GET", SMALL_PATH, headers={"Cookie": f"{SESSION_COOKIE}={value}"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{target}: a session got status {response.status}")
        connection.close()

    workers = 4
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(worker, [cookies[index::workers] for index in range(workers)]))


def run_memory(run: Run) -> None:
    """Measure resident memory of fresh processes before and after
    `sessions` distinct sessions were created and used."""
    count = run.settings.sessions
    for target, store in (("rss-redis", "redis"), ("rss-memory", "memory")):
        service = start_portcullis(run, target, store)
        idle = service.rss_kib()
        started = time.monotonic()
        cookies = login.many_sessions(f"{run.url(target)}{SMALL_PATH}", SESSION_COOKIE, count)
        login_seconds = time.monotonic() - started
        use_sessions(run, target, cookies)
        used = service.rss_kib()
        peak = service.peak_rss_kib()
        run.memory[target] = {
            "store": store,
            "sessions": count,
            "idle_kib": idle,
            "after_kib": used,
            "peak_kib": peak,
            "login_seconds": login_seconds,
        }
        log(
            f"{target}: RSS {idle / 1024:.1f} MiB idle, {used / 1024:.1f} MiB after {count:,} sessions "
            f"(peak {peak / 1024:.1f} MiB; logins took {login_seconds:.0f} s)"
        )
        run.servers.stop(run.portcullis_pids.pop(target))


# ---------------------------------------------------------------- report


def command_output(command: list[str]) -> str:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=30)
        return (completed.stdout + completed.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def machine_facts() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{memory_kib / 1024 / 1024:.0f} GiB",
        "kernel": platform.release(),
        "os": command_output(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
    }


def tool_versions() -> dict[str, str]:
    apache_oidc = command_output(["dpkg-query", "-W", "-f=${Version}", "libapache2-mod-auth-openidc"])
    return {
        "nginx": command_output(["nginx", "-v"]).removeprefix("nginx version: "),
        "Apache httpd": command_output(["apache2", "-v"]).splitlines()[0].removeprefix("Server version: "),
        "mod_auth_openidc": apache_oidc,
        "Redis": command_output(["redis-server", "--version"]).split()[2].removeprefix("v="),
        "PostgreSQL": command_output(["psql", POSTGRES_URL, "-tAc", "SHOW server_version"]),
        "wrk": command_output(["wrk", "-v"]).splitlines()[0],
    }


def git_commit() -> str:
    commit = command_output(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"])
    dirty = command_output(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    return commit + (" (with uncommitted changes)" if dirty else "")


def goals(run: Run) -> list[Goal]:
    m = run.measurements
    results: list[Goal] = []

    for connections in (1, 32, 256):
        scenario = f"get-c{connections}"
        value = ratio(m, scenario, "pc-redis", "nginx")
        results.append(
            Goal(
                f"Redis sessions ≥ 0.8 × nginx req/s, {connections} connection{'s' if connections > 1 else ''}",
                format_ratio(value),
                None if value is None else value >= 0.8,
            )
        )

    for connections in (1, 32, 256):
        scenario = f"get-c{connections}"
        value = ratio(m, scenario, "pc-redis", "apache")
        results.append(
            Goal(
                f"Redis sessions ≥ 10 × Apache + mod_auth_openidc req/s, {connections} connection{'s' if connections > 1 else ''}",
                format_ratio(value),
                None if value is None else value >= 10,
            )
        )

    for connections in (1, 32, 256):
        scenario = f"get-c{connections}"
        value = ratio(m, scenario, "pc-redis", "pc-public")
        results.append(
            Goal(
                f"authenticated ≥ 0.9 × public path req/s, {connections} connection{'s' if connections > 1 else ''}",
                format_ratio(value),
                None if value is None else value >= 0.9,
            )
        )

    excess = p99_excess_ms(m, "get-c32", "pc-redis", "nginx")
    results.append(
        Goal(
            "p99 at 32 connections ≤ nginx p99 + 0.5 ms",
            "n/a" if excess is None else f"{excess:+.2f} ms",
            None if excess is None else excess <= 0.5,
        )
    )

    for target, stats in run.memory.items():
        after_mib = stats["after_kib"] / 1024
        results.append(
            Goal(
                f"RSS < 64 MiB after {stats['sessions']:,} sessions, {stats['store']} store",
                f"{after_mib:.1f} MiB",
                after_mib < 64 if stats["sessions"] >= 10_000 else None,
            )
        )

    summaries = summarise(m)

    for target in ("scim-sqlite", "scim-postgres"):
        summary = summaries.get(("scim-filter", target))
        if summary:
            results.append(
                Goal(
                    f"SCIM userName filter p99 < 5 ms, {TARGET_LABELS[target].split(', ')[1]}, {run.settings.users:,} users",
                    f"{format_ms(summary.p99_ms)} ms",
                    summary.p99_ms < 5,
                )
            )

    for target in ("scim-sqlite", "scim-postgres"):
        times = sorted(entry["seconds"] for entry in run.imports if entry["target"] == target)
        if times:
            median = times[len(times) // 2]
            results.append(
                Goal(
                    f"Okta import of {run.settings.users:,} users in pages of {IMPORT_PAGE} < 30 s, {TARGET_LABELS[target].split(', ')[1]}",
                    f"{median:.1f} s",
                    median < 30 if run.settings.users >= 100_000 else None,
                )
            )

    return results


def results_markdown(run: Run, facts: dict, scenarios: list[Scenario], chart_name: str) -> str:
    summaries = summarise(run.measurements)
    s = run.settings
    lines = [
        f"Run of {facts['date']} on commit `{facts['commit']}`, "
        f"{'quick mode, ' if s.quick else ''}{s.rounds} round{'s' if s.rounds > 1 else ''}, "
        f"{s.warmup_s:g} s warm-up and {s.duration_s:g} s measured per target and scenario; "
        f"the whole command took {facts['elapsed_minutes']:.1f} minutes.",
        "",
        f"Machine: {facts['machine']['cores']} cores ({facts['machine']['cpu']}), {facts['machine']['memory']}, "
        f"{facts['machine']['os']}, kernel {facts['machine']['kernel']}. "
        f"Load average before the run {facts['load_before']}, after it {facts['load_after']}.",
        "",
        "Versions: " + ", ".join(f"{name} {version}" for name, version in facts["versions"].items()) + ".",
        "",
    ]
    lines.extend(f"NOTE: {note}" for note in run.notes)
    if run.notes:
        lines.append("")

    lines += ["### Goals", ""]

    goal_rows = [
        [goal.text, goal.measured, {True: "met", False: "**missed**", None: "not measured at full size"}[goal.met]]
        for goal in goals(run)
    ]
    lines.append(markdown_table(["goal", "measured", "result"], goal_rows, "lrl"))

    lines += ["", "### Throughput and latency", ""]
    lines.append(
        "Medians over the rounds. Ratios divide the target's requests/s by the baseline's in the same round, "
        "then take the median over rounds."
    )
    lines.append("")
    lines.append(f"![requests/s and latency per target]({chart_name})")
    lines.append("")

    for scenario in scenarios:
        lines += [f"**{scenario.title}**", ""]
        rows = []
        for target in scenario.targets:
            summary = summaries.get((scenario.id, target))
            if not summary:
                continue
            row = [
                TARGET_LABELS[target],
                format_rate(summary.requests_per_s),
                format_ms(summary.p50_ms),
                format_ms(summary.p99_ms),
                str(summary.errors),
            ]
            for baseline in ("nginx", "apache", "pc-public"):
                in_scenario = baseline in scenario.targets and target != baseline
                row.append(format_ratio(ratio(run.measurements, scenario.id, target, baseline)) if in_scenario else "")
            rows.append(row)
        lines.append(
            markdown_table(
                ["target", "req/s", "p50 ms", "p99 ms", "errors", "× nginx", "× Apache", "× public path"],
                rows,
                "lrrrrrrr",
            )
        )
        lines.append("")

    lines += ["### Okta-style import", ""]

    import_rows = []

    for target in ("scim-sqlite", "scim-postgres"):
        times = [entry["seconds"] for entry in run.imports if entry["target"] == target]
        if times:
            import_rows.append(
                [TARGET_LABELS[target], f"{s.users:,}", " / ".join(f"{t:.1f}" for t in times), f"{sorted(times)[len(times) // 2]:.1f}"]
            )
    lines.append(markdown_table(["target", "users", "seconds per round", "median s"], import_rows, "lrrr"))

    lines += ["", "### Resident memory", ""]

    memory_rows = [
        [
            f"portcullis, {stats['store']} store",
            f"{stats['sessions']:,}",
            f"{stats['idle_kib'] / 1024:.1f}",
            f"{stats['after_kib'] / 1024:.1f}",
            f"{stats['peak_kib'] / 1024:.1f}",
        ]
        for stats in run.memory.values()
    ]
    lines.append(
        markdown_table(["process", "sessions", "idle MiB", "after MiB", "peak MiB"], memory_rows, "lrrrr")
    )

    return "\n".join(lines) + "\n"


def write_outputs(run: Run, facts: dict, scenarios: list[Scenario]) -> Path:
    output = run.settings.output
    output.mkdir(parents=True, exist_ok=True)
    summaries = summarise(run.measurements)
    panels = []
    for scenario in scenarios:
        rows = [
            (TARGET_LABELS[target], summaries[(scenario.id, target)])
            for target in scenario.targets
            if (scenario.id, target) in summaries
        ]
        panels.append((scenario.title, rows))
    chart_title = f"portcullis benchmark, {facts['date']}, commit {facts['commit'].split()[0]}"
    (output / "chart.svg").write_text(render_chart(chart_title, panels))
    markdown = results_markdown(run, facts, scenarios, "chart.svg")
    (output / "results.md").write_text(markdown)
    raw = {
        "facts": facts,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in run.settings.__dict__.items()},
        "measurements": [m.as_dict() for m in run.measurements],
        "imports": run.imports,
        "memory": run.memory,
        "notes": run.notes,
    }
    (output / "results.json").write_text(json.dumps(raw, indent=2) + "\n")
    if run.settings.update_page:
        update_page(markdown.replace("](chart.svg)", f"]({output.relative_to(REPO) / 'chart.svg'})"))
    return output


def update_page(markdown: str) -> None:
    """Replace the generated part of BENCHMARKS.md with `markdown`."""
    page = REPO / "BENCHMARKS.md"
    text = page.read_text()
    start, end = text.find(PAGE_MARKER_START), text.find(PAGE_MARKER_END)
    if start < 0 or end < start:
        raise RuntimeError(f"{page} lacks the markers {PAGE_MARKER_START} and {PAGE_MARKER_END}")
    page.write_text(text[: start + len(PAGE_MARKER_START)] + "\n" + markdown + text[end:])
    log(f"updated {page}")


# ---------------------------------------------------------------- main


def parse_arguments() -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round of 2 s per measurement, 10,000 users, 500 sessions")
    parser.add_argument("--rounds", type=int, help="rounds over all targets (default 3, quick 1)")
    parser.add_argument("--duration", type=int, help="whole seconds measured per target and scenario (default 5, quick 2)")
    parser.add_argument("--warmup", type=int, help="whole seconds of warm-up before each measurement (default 1, quick 1)")
    parser.add_argument("--users", type=int, help="SCIM users in each directory (default 100000, quick 10000)")
    parser.add_argument("--sessions", type=int, help="sessions for the memory measurement (default 10000, quick 500)")
    parser.add_argument("--output", type=Path, help="folder for results (default bench/results, quick bench/results/quick)")
    parser.add_argument("--no-page", action="store_true", help="leave BENCHMARKS.md unchanged")
    arguments = parser.parse_args()
    quick = arguments.quick

    def pick(value, full, smoke):
        return value if value is not None else (smoke if quick else full)

    output = pick(arguments.output, REPO / "bench" / "results", REPO / "bench" / "results" / "quick")
    return Settings(
        rounds=pick(arguments.rounds, 3, 1),
        duration_s=pick(arguments.duration, 5, 2),
        warmup_s=pick(arguments.warmup, 1, 1),
        users=pick(arguments.users, 100_000, 10_000),
        sessions=pick(arguments.sessions, 10_000, 500),
        output=output.resolve(),
        update_page=not (quick or arguments.no_page),
        quick=quick,
    )


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    settings = parse_arguments()
    started = time.monotonic()
    run_dir = REPO / ".run" / "bench"
    run_dir.mkdir(parents=True, exist_ok=True)
    run = Run(settings, run_dir, services.Services(run_dir))
    names = ["redis", "upstream", "nginx", "pingora", "apache"]
    for name in ("pc-redis", "pc-memory", "rss-redis", "rss-memory", "scim-sqlite", "scim-postgres"):
        names += [name, name + "-admin"]
    for name in names:
        run.ports[name] = services.free_port(PROXY_HOST)
    run.ports["idp"] = services.free_port(IDP_HOST)
    run.ports["pc-public"] = run.ports["pc-redis"]

    load_before = load_average()
    if float(load_before.split()[0]) > 1.5:
        run.notes.append(
            f"the load average was {load_before} when the run started: other work shared the two cores"
        )
    # SIGTERM and SIGHUP end the run through the same clean-up as an error.
    for signal_number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signal_number, lambda number, _frame: sys.exit(128 + number))
    scenarios = []
    try:
        log(f"logs and configuration in {run_dir}; load average {load_before}")
        start_redis(run)
        start_idp(run)
        start_nginx(run)
        start_apache(run)
        start_passthrough(run)
        start_portcullis(run, "pc-redis", "redis")
        start_portcullis(run, "pc-memory", "memory")
        for target, cookie in (("apache", APACHE_COOKIE), ("pc-redis", SESSION_COOKIE), ("pc-memory", SESSION_COOKIE)):
            run.cookies[target] = login.log_in(login.Browser(), f"{run.url(target)}{SMALL_PATH}", cookie)
        log("signed in through Apache and both portcullis instances")

        scenarios = proxy_scenarios(run)
        run_rounds(run, scenarios)
        for name in ("pc-redis", "pc-memory"):
            run.servers.stop(run.portcullis_pids.pop(name))
        run_memory(run)
        run_scim(run)
    finally:
        run.servers.stop_all()
        drop_postgres_schema(run)

    facts = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "machine": machine_facts(),
        "versions": tool_versions(),
        "load_before": load_before,
        "load_after": load_average(),
        "elapsed_minutes": (time.monotonic() - started) / 60,
    }
    output = write_outputs(run, facts, scenarios + run.scim_scenarios)
    log(f"done in {facts['elapsed_minutes']:.1f} minutes; results in {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

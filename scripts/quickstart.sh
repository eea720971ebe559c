#!/usr/bin/env bash
# Start a local OpenID provider, a sample dashboard and portcullis in front of
# it, all on free loopback ports, so that a browser can sign in for real.
# `--check` signs in once with curl instead, and `--help` lists the options.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

readonly PROXY_HOST=127.0.0.1
# The IdP gets its own loopback address because browsers and curl ignore the
# port when they match cookies, so its cookies cannot mix with the proxy's.
readonly IDP_HOST=127.0.0.2
readonly READY_TIMEOUT_SECONDS=30
readonly STOP_TIMEOUT_SECONDS=10
# A --check run has a folder of its own, so it never overwrites the logs of
# a quick start that is still running. parse_arguments sets these.
LOG_DIR=".run/quickstart"
CHECK_COOKIE_JAR=""
CHECK_PAGE=""
readonly CONFIG_FILE="config/quickstart.toml"

check_mode=false
service_names=()
service_pids=()

usage() {
  cat <<'EOF'
Usage: scripts/quickstart.sh [--check]

Starts a local OpenID provider, a sample dashboard and portcullis on free
loopback ports, prints the URL to open, and runs until Ctrl-C.

  --check    sign in once as alice with curl, print PASS or FAIL, then stop
             everything and exit 0 or 1
  -h, --help show this help

PORTCULLIS_PROFILE=release (default) or debug selects the cargo profile;
PORTCULLIS_BINARY=PATH runs an existing binary instead of building one.
EOF
}

parse_arguments() {
  while [ "$#" -gt 0 ]; do
    case "$1" in
      --check)
        check_mode=true
        LOG_DIR=".run/quickstart-check"
        ;;
      -h | --help) usage; exit 0 ;;
      *) echo "quickstart: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
  done
  CHECK_COOKIE_JAR="$LOG_DIR/check-cookies.txt"
  CHECK_PAGE="$LOG_DIR/check-page.html"
}

# Prints a port that is free on HOST: PREFERRED when it is free, otherwise one
# the kernel picks. Ports in the remaining arguments are never returned.
pick_port() {
  local host="$1" preferred="$2" port
  shift 2
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    port="$(node -e 'const s = require("net").createServer().on("error", () => process.exit(1)); s.listen(Number(process.argv[2]), process.argv[1], () => { console.log(s.address().port); s.close(); });' "$host" "$preferred" 2>/dev/null)" || port=""
    preferred=0
    if [ -n "$port" ] && [[ " $* " != *" $port "* ]]; then
      echo "$port"
      return
    fi
  done
  echo "quickstart: no free port found on $host after 10 attempts" >&2
  return 1
}

# Starts a command in the background with its output in LOG_DIR/NAME.log.
start_service() {
  local name="$1"
  shift
  "$@" >"$LOG_DIR/$name.log" 2>&1 &
  service_names+=("$name")
  service_pids+=("$!")
}

# Stops every started service with SIGTERM; an idle portcullis exits at once.
# Anything still running after STOP_TIMEOUT_SECONDS gets SIGKILL.
stop_services() {
  trap - EXIT INT TERM
  local i pid deadline
  for i in "${!service_pids[@]}"; do
    pid="${service_pids[$i]}"
    kill -TERM "$pid" 2>/dev/null || true
  done

  deadline=$((SECONDS + STOP_TIMEOUT_SECONDS))
  for i in "${!service_pids[@]}"; do
    pid="${service_pids[$i]}"
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "quickstart: ${service_names[$i]} (pid $pid) did not stop within ${STOP_TIMEOUT_SECONDS}s, sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

fail_start() {
  local name="$1" reason="$2"
  echo "quickstart: $name $reason. Last lines of $LOG_DIR/$name.log:" >&2
  tail -n 20 "$LOG_DIR/$name.log" >&2 || true
  exit 1
}

# Runs the command in the remaining arguments until it succeeds, for at most
# READY_TIMEOUT_SECONDS, and fails early when service NAME (PID) exits.
wait_until_ready() {
  local name="$1" pid="$2"
  shift 2
  local deadline=$((SECONDS + READY_TIMEOUT_SECONDS))
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      fail_start "$name" "exited before it was ready"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      fail_start "$name" "was not ready within ${READY_TIMEOUT_SECONDS}s"
    fi
    sleep 0.1
  done
}

last_pid() {
  echo "${service_pids[${#service_pids[@]} - 1]}"
}

build_portcullis() {
  if [ -n "${PORTCULLIS_BINARY:-}" ]; then
    portcullis_binary="$PORTCULLIS_BINARY"
    return
  fi
  local profile="${PORTCULLIS_PROFILE:-release}"
  case "$profile" in
    release) cargo build --release --bin portcullis ;;
    debug) cargo build --bin portcullis ;;
    *) echo "quickstart: PORTCULLIS_PROFILE must be release or debug, got '$profile'" >&2; exit 2 ;;
  esac
  portcullis_binary="${CARGO_TARGET_DIR:-target}/$profile/portcullis"
}

start_fixtures() {
  start_service idp env \
    IDP_HOST="$IDP_HOST" IDP_PORT="$idp_port" \
    IDP_REDIRECT_URIS="$public_url/oauth2/callback" \
    IDP_POST_LOGOUT_URIS="$public_url/" \
    node tests/fixtures/idp.mjs
  wait_until_ready idp "$(last_pid)" grep -q "^idp listening on " "$LOG_DIR/idp.log"

  start_service upstream env \
    UPSTREAM_HOST="$PROXY_HOST" UPSTREAM_PORT="$upstream_port" \
    node tests/fixtures/upstream.mjs
  wait_until_ready upstream "$(last_pid)" grep -q "^upstream listening on " "$LOG_DIR/upstream.log"
}

start_portcullis() {
  start_service portcullis env \
    PORTCULLIS_SERVER__LISTEN="$PROXY_HOST:$proxy_port" \
    PORTCULLIS_SERVER__PUBLIC_URL="$public_url" \
    PORTCULLIS_SERVER__ADMIN_LISTEN="$PROXY_HOST:$admin_port" \
    PORTCULLIS_UPSTREAM__URL="http://$PROXY_HOST:$upstream_port" \
    PORTCULLIS_OIDC__ISSUER="$issuer" \
    "$portcullis_binary" serve --config "$CONFIG_FILE"
  wait_until_ready portcullis "$(last_pid)" curl -fsS --max-time 2 "http://$PROXY_HOST:$admin_port/livez"
}

# Requests a URL with the check's cookie jar, following redirects, and stores
# the final page in CHECK_PAGE. Extra curl arguments (such as form fields) come
# before the URL. Prints "<status> <final URL>".
fetch_page() {
  curl -sS --max-time 10 -L --max-redirs 10 -b "$CHECK_COOKIE_JAR" -c "$CHECK_COOKIE_JAR" \
    -H 'Accept: text/html' -o "$CHECK_PAGE" -w '%{http_code} %{url_effective}' "$@"
}

check_failed() {
  echo "FAIL: $1"
  echo "See the logs in $LOG_DIR/ and the last page fetched in $CHECK_PAGE."
  exit 1
}

# Signs in as alice through the proxy the way a browser does: the proxy
# redirects to the IdP, the IdP shows its login and consent forms, and its
# redirect to the callback leads back to the dashboard.
check_login() {
  local status location result form_url
  rm -f "$CHECK_COOKIE_JAR" "$CHECK_PAGE"

  result="$(curl -sS --max-time 10 -b "$CHECK_COOKIE_JAR" -c "$CHECK_COOKIE_JAR" -H 'Accept: text/html' \
    -o "$CHECK_PAGE" -w '%{http_code} %{redirect_url}' "$public_url/")" || check_failed "GET $public_url/ failed"
  status="${result%% *}"
  location="${result#* }"
  if [[ "$status" != 30[237] || "$location" != "$issuer/auth?"* ]]; then
    check_failed "GET $public_url/ returned $status to '$location', expected a redirect to $issuer/auth"
  fi

  result="$(fetch_page "$location")" || check_failed "the IdP authorization request failed"
  # The IdP shows at most a login form and a consent form, and it skips either
  # one when its session or an earlier grant already covers it.
  for _ in 1 2 3; do
    form_url="${result#* }"
    if grep -q 'name="login"' "$CHECK_PAGE"; then
      result="$(fetch_page -d prompt=login -d login=alice -d password=quickstart "$form_url")" \
        || check_failed "submitting the IdP login form failed"
    elif grep -q 'value="consent"' "$CHECK_PAGE"; then
      result="$(fetch_page -d prompt=consent "$form_url")" || check_failed "submitting the IdP consent form failed"
    else
      break
    fi
  done

  status="${result%% *}"
  if [ "$status" != 200 ] || [ "${result#* }" != "$public_url/" ]; then
    check_failed "the sign-in ended at ${result#* } with status $status, expected 200 at $public_url/"
  fi
  # upstream.mjs greets the user by X-Forwarded-Preferred-Username.
  if ! grep -qF 'Hello, alice.' "$CHECK_PAGE"; then
    check_failed "the dashboard page at $public_url/ does not greet alice"
  fi
  echo "PASS: signed in as alice through $public_url/ and reached the dashboard"
}

print_instructions() {
  cat <<EOF

portcullis is running.

  Open         $public_url/
  Sign in as   alice or bob, with any password
  Admin        http://$PROXY_HOST:$admin_port/livez
  IdP          $issuer
  Logs         $LOG_DIR/idp.log, upstream.log, portcullis.log

Press Ctrl-C to stop.
EOF
}

# Waits until any service exits, then names it and fails. Ctrl-C interrupts
# the wait and runs the traps, which stop the other services.
wait_for_exit() {
  local i
  wait -n "${service_pids[@]}" || true
  for i in "${!service_pids[@]}"; do
    if ! kill -0 "${service_pids[$i]}" 2>/dev/null; then
      echo "quickstart: ${service_names[$i]} exited. See $LOG_DIR/${service_names[$i]}.log" >&2
    fi
  done
  exit 1
}

main() {
  parse_arguments "$@"
  if [ ! -f "$CONFIG_FILE" ]; then
    echo "quickstart: $CONFIG_FILE not found in $repo_root" >&2
    exit 1
  fi

  bash scripts/setup.sh
  build_portcullis

  proxy_port="$(pick_port "$PROXY_HOST" 8080)"
  admin_port="$(pick_port "$PROXY_HOST" 0 "$proxy_port")"
  upstream_port="$(pick_port "$PROXY_HOST" 3000 "$proxy_port" "$admin_port")"
  idp_port="$(pick_port "$IDP_HOST" 9000)"
  public_url="http://$PROXY_HOST:$proxy_port"
  issuer="http://$IDP_HOST:$idp_port"

  mkdir -p "$LOG_DIR"
  trap stop_services EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  echo "quickstart: logs go to $LOG_DIR/"

  start_fixtures
  start_portcullis

  if [ "$check_mode" = true ]; then
    check_login
  else
    print_instructions
    wait_for_exit
  fi
}

main "$@"

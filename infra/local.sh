#!/usr/bin/env bash
# Local infrastructure for polycopy-stream without Docker: a real single-node
# Apache Kafka 4.x broker (KRaft, jars resolved with Maven) and PostgreSQL.
#
# Usage: infra/local.sh {up|down|status|kafka-up|kafka-down|postgres-up|postgres-down}
#
# State lives in $POLYCOPY_DATA_DIR (default: <repo>/.data):
#   kafka/libs               broker jars (resolved once, re-resolved when pom.xml changes)
#   kafka/logs               Kafka log.dirs (formatted once)
#   kafka/server.properties  rendered from infra/kafka/server.properties.template
#   kafka/broker.log, kafka/pid
#   postgres/data, postgres/log, postgres/run (unix socket)
#
# Environment:
#   POLYCOPY_DATA_DIR        state directory (default <repo>/.data)
#   POLYCOPY_KAFKA_PORT      broker port (default 19092; KAFKA_PORT also accepted)
#   POLYCOPY_KAFKA_CONTROLLER_PORT  controller port (default 19093)
#   POLYCOPY_PG_PORT         PostgreSQL port (default 15432)
#   KAFKA_HEAP_OPTS          JVM heap flags (default -Xmx768m -Xms256m)
#   KAFKA_BOOTSTRAP_SERVERS  if set, local Kafka is not started (external Kafka)
#   DATABASE_URL             if set, local PostgreSQL is not started (external DB)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
DATA_DIR="${POLYCOPY_DATA_DIR:-$REPO_ROOT/.data}"

KAFKA_PORT="${POLYCOPY_KAFKA_PORT:-${KAFKA_PORT:-19092}}"
KAFKA_CONTROLLER_PORT="${POLYCOPY_KAFKA_CONTROLLER_PORT:-19093}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx768m -Xms256m}"
KAFKA_SRC="$SCRIPT_DIR/kafka"
KAFKA_DIR="$DATA_DIR/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_LOGS="$KAFKA_DIR/logs"
KAFKA_CONF="$KAFKA_DIR/server.properties"
KAFKA_LOG4J="$KAFKA_SRC/log4j2.properties"
KAFKA_BROKER_LOG="$KAFKA_DIR/broker.log"
KAFKA_PIDFILE="$KAFKA_DIR/pid"
KAFKA_READY_TIMEOUT="${POLYCOPY_KAFKA_READY_TIMEOUT:-60}"

PG_PORT="${POLYCOPY_PG_PORT:-15432}"
PG_USER=polycopy   # database superuser (initdb -U)
PG_DB=polycopy
PG_OS_USER=polycopy  # unprivileged OS user running the server when we are root

# ---------------------------------------------------------------- helpers ---

say() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
warn() { printf 'warning: %s\n' "$*" >&2; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# apt_install PKG... : root + apt-get only; tries without, then with `apt-get update`.
apt_install() {
  is_root && command -v apt-get >/dev/null 2>&1 || return 1
  say "installing $* with apt-get..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "$@" >/dev/null 2>&1 && return 0
  apt-get update -q >/dev/null 2>&1 || true
  apt-get install -y -q "$@" >/dev/null
}

# port_open PORT : something accepts TCP connections on 127.0.0.1:PORT
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# port_owner PORT : best-effort "pid/command" description of a listener
port_owner() {
  command -v ss >/dev/null 2>&1 || return 0
  ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -n1 || true
}

hash_file() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
  else cksum "$1" | cut -d' ' -f1; fi
}

# ------------------------------------------------------------------ kafka ---

kafka_pid() {
  # Prints the broker pid if our broker is running (guards against pid reuse).
  [ -f "$KAFKA_PIDFILE" ] || return 1
  local pid
  pid="$(cat "$KAFKA_PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
  printf '%s\n' "$pid"
}

kafka_configured_port() {
  local p
  p="$(sed -n 's|^advertised\.listeners=PLAINTEXT://[^:]*:\([0-9]*\).*|\1|p' "$KAFKA_CONF" 2>/dev/null || true)"
  printf '%s\n' "${p:-$KAFKA_PORT}"
}

ensure_java() {
  if ! command -v java >/dev/null 2>&1; then
    apt_install openjdk-17-jre-headless ||
      die "java not found; install a JDK 17+ (apt-get install -y openjdk-17-jre-headless)"
    command -v java >/dev/null 2>&1 ||
      die "java not found; install a JDK 17+ (apt-get install -y openjdk-17-jre-headless)"
  fi
  local major
  major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)"
  if [ -n "$major" ] && [ "$major" -lt 17 ]; then
    die "java $major found but Kafka 4 needs 17+; install a JDK 17+ (apt-get install -y openjdk-17-jre-headless)"
  fi
}

ensure_mvn() {
  command -v mvn >/dev/null 2>&1 && return 0
  apt_install maven || die "mvn not found; install Maven 3.6+ (apt-get install -y maven)"
  command -v mvn >/dev/null 2>&1 || die "mvn not found; install Maven 3.6+ (apt-get install -y maven)"
}

kafka_resolve_jars() {
  local want have=""
  want="$(hash_file "$KAFKA_SRC/pom.xml")"
  [ -f "$KAFKA_LIBS/.pom.hash" ] && have="$(cat "$KAFKA_LIBS/.pom.hash")"
  if [ "$want" = "$have" ] && ls "$KAFKA_LIBS"/kafka_2.13-*.jar >/dev/null 2>&1; then
    return 0
  fi
  ensure_mvn
  if [ -n "$have" ]; then
    say "kafka: infra/kafka/pom.xml changed; re-resolving jars with Maven..."
  else
    say "kafka: resolving jars with Maven (first run only)..."
  fi
  local t0 tmp
  t0="$(now)"
  tmp="$KAFKA_DIR/libs.tmp.$$"
  rm -rf "$tmp"
  if ! mvn -q -B -f "$KAFKA_SRC/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$tmp" -DincludeScope=runtime >"$KAFKA_DIR/mvn.log" 2>&1; then
    rm -rf "$tmp"
    tail -n 20 "$KAFKA_DIR/mvn.log" >&2 || true
    die "Maven could not resolve the Kafka jars (see $KAFKA_DIR/mvn.log)"
  fi
  ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "Maven ran but no kafka_2.13 jar was copied"; }
  printf '%s\n' "$want" >"$tmp/.pom.hash"
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
  say "kafka: $(ls "$KAFKA_LIBS"/*.jar | wc -l) jars resolved in $(elapsed "$t0") s"
}

kafka_render_conf() {
  sed -e "s|\${KAFKA_PORT}|$KAFKA_PORT|g" \
      -e "s|\${KAFKA_CONTROLLER_PORT}|$KAFKA_CONTROLLER_PORT|g" \
      -e "s|\${KAFKA_LOG_DIRS}|$KAFKA_LOGS|g" \
      "$KAFKA_SRC/server.properties.template" >"$KAFKA_CONF.tmp"
  mv "$KAFKA_CONF.tmp" "$KAFKA_CONF"
}

kafka_format() {
  [ -f "$KAFKA_LOGS/meta.properties" ] && return 0
  say "kafka: formatting storage (first run only)..."
  local cluster_id
  if [ -s "$KAFKA_DIR/cluster.id" ]; then
    cluster_id="$(cat "$KAFKA_DIR/cluster.id")"
  else
    cluster_id="$(java -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
    [ -n "$cluster_id" ] || die "kafka: could not generate a cluster id (kafka.tools.StorageTool random-uuid)"
    printf '%s\n' "$cluster_id" >"$KAFKA_DIR/cluster.id"
  fi
  mkdir -p "$KAFKA_LOGS"
  if ! java -Dlog4j2.configurationFile="$KAFKA_LOG4J" -cp "$KAFKA_LIBS/*" \
        kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_CONF" >"$KAFKA_DIR/format.log" 2>&1; then
    cat "$KAFKA_DIR/format.log" >&2
    die "kafka: storage format failed (see $KAFKA_DIR/format.log)"
  fi
}

kafka_up() {
  if [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    say "kafka: using external Kafka at $KAFKA_BOOTSTRAP_SERVERS (KAFKA_BOOTSTRAP_SERVERS is set)"
    return 0
  fi
  local pid
  if pid="$(kafka_pid)"; then
    say "kafka: already running (pid $pid) on 127.0.0.1:$(kafka_configured_port)"
    return 0
  fi
  rm -f "$KAFKA_PIDFILE"
  mkdir -p "$KAFKA_DIR"
  ensure_java
  for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    if port_open "$p"; then
      die "kafka: port 127.0.0.1:$p is already in use by another process $(port_owner "$p"); stop it or set POLYCOPY_KAFKA_PORT/POLYCOPY_KAFKA_CONTROLLER_PORT"
    fi
  done
  kafka_resolve_jars
  kafka_render_conf
  kafka_format

  local t0 log_offset
  t0="$(now)"
  touch "$KAFKA_BROKER_LOG"
  printf '===== %s starting broker (infra/local.sh) =====\n' "$(date '+%F %T')" >>"$KAFKA_BROKER_LOG"
  log_offset="$(wc -c <"$KAFKA_BROKER_LOG")"
  # setsid: detach from the caller's session so Ctrl-C / CI job control does
  # not take the broker down; the inner shell records its own pid, which
  # `exec` hands over to the JVM.
  # shellcheck disable=SC2086
  # Every partition holds open files; tests create and delete many topics, and the default limit of a few
  # thousand descriptors takes the broker down ("Too many open files": all log dirs fail). Raise it as far as
  # this user may.
  ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  nohup setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$KAFKA_PIDFILE" \
    java $KAFKA_HEAP_OPTS -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$KAFKA_LOG4J" \
      -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONF" \
    >>"$KAFKA_BROKER_LOG" 2>&1 </dev/null &

  # Wait for the pid file, then for the listener and the "started" log line.
  local deadline=$((SECONDS + KAFKA_READY_TIMEOUT))
  while :; do
    if pid="$(kafka_pid)"; then
      if port_open "$KAFKA_PORT" &&
         tail -c +"$((log_offset + 1))" "$KAFKA_BROKER_LOG" | grep -q 'Kafka Server started'; then
        break
      fi
    elif [ -s "$KAFKA_PIDFILE" ] && ! kill -0 "$(cat "$KAFKA_PIDFILE")" 2>/dev/null; then
      tail -n 30 "$KAFKA_BROKER_LOG" >&2 || true
      rm -f "$KAFKA_PIDFILE"
      die "kafka: broker exited during startup (see $KAFKA_BROKER_LOG)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 30 "$KAFKA_BROKER_LOG" >&2 || true
      die "kafka: not ready after ${KAFKA_READY_TIMEOUT}s (see $KAFKA_BROKER_LOG; still running, stop with: $0 down)"
    fi
    sleep 0.2
  done
  say "kafka: started (pid $pid) on 127.0.0.1:$KAFKA_PORT, ready in $(elapsed "$t0") s"
}

kafka_down() {
  local pid
  if ! pid="$(kafka_pid)"; then
    rm -f "$KAFKA_PIDFILE"
    say "kafka: not running"
    return 0
  fi
  say "kafka: stopping (pid $pid)..."
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 150; i++)); do   # 30 s
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    warn "kafka: broker did not stop within 30 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$KAFKA_PIDFILE"
  say "kafka: stopped"
}

kafka_status() {
  local pid ext=""
  [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ] && ext=" (KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS is set: clients use that)"
  if pid="$(kafka_pid)"; then
    say "kafka: running (pid $pid) on 127.0.0.1:$(kafka_configured_port)$ext"
  else
    say "kafka: stopped$ext"
  fi
}

# --------------------------------------------------------------- postgres ---

# Resolved lazily (finding/installing binaries is only needed for `up`).
PG_BIN=""
PG_ROOT=""   # real path of $DATA_DIR/postgres (may be a symlink, see pg_layout)

pg_find_bin() {
  local d
  if command -v pg_config >/dev/null 2>&1; then
    d="$(pg_config --bindir 2>/dev/null || true)"
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then printf '%s\n' "$d"; return 0; fi
  fi
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then printf '%s\n' "$d"; return 0; fi
  d="$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")"
  if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then printf '%s\n' "$d"; return 0; fi
  return 1
}

pg_ensure_bin() {
  [ -n "$PG_BIN" ] && return 0
  if ! PG_BIN="$(pg_find_bin)"; then
    say "postgres: server binaries not found"
    apt_install postgresql || die "PostgreSQL server binaries not found and apt-get install postgresql failed"
    PG_BIN="$(pg_find_bin)" || die "PostgreSQL server binaries not found and apt-get install postgresql failed"
  fi
}

# Run a command as the unprivileged server user (PostgreSQL refuses root).
# Runs from / so a cwd the server user cannot read (e.g. /root) does not matter.
pg_as() {
  if is_root; then (cd / && runuser -u "$PG_OS_USER" -- "$@"); else "$@"; fi
}

pg_ensure_os_user() {
  is_root || return 0
  id -u "$PG_OS_USER" >/dev/null 2>&1 && return 0
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin "$PG_OS_USER" 2>/dev/null ||
    id -u "$PG_OS_USER" >/dev/null 2>&1 ||
    die "postgres: could not create system user '$PG_OS_USER' (useradd failed)"
}

# Decide where the PostgreSQL state physically lives. Normally that is
# $DATA_DIR/postgres; if the unprivileged user cannot reach that directory
# (e.g. the repo is under /root, mode 700) it lives under /var/tmp and
# $DATA_DIR/postgres is a symlink to it.
pg_layout() {
  local link="$DATA_DIR/postgres"
  if [ ! -e "$link" ]; then
    mkdir -p "$DATA_DIR"
    if is_root && ! runuser -u "$PG_OS_USER" -- test -r "$DATA_DIR" -a -x "$DATA_DIR" 2>/dev/null; then
      local ext
      ext="/var/tmp/polycopy-pg-$(printf '%s' "$DATA_DIR" | cksum | cut -d' ' -f1)"
      mkdir -p "$ext"
      ln -s "$ext" "$link"
      say "postgres: $DATA_DIR is not accessible to user $PG_OS_USER; state lives in $ext (symlinked)"
    else
      mkdir -p "$link"
    fi
  fi
  PG_ROOT="$(readlink -f "$link")"
}

pg_data() { printf '%s\n' "$PG_ROOT/data"; }

pg_socket_dir() {
  # Unix socket paths are limited to ~107 bytes; fall back to /tmp if needed.
  local d="$PG_ROOT/run"
  if [ $(( ${#d} + 20 )) -gt 100 ]; then d=/tmp; fi
  printf '%s\n' "$d"
}

# Prints "pid port" of the running postmaster for our data dir.
pg_running() {
  local pidfile
  pidfile="$(pg_data)/postmaster.pid"
  [ -f "$pidfile" ] || return 1
  local pid port
  pid="$(sed -n 1p "$pidfile" 2>/dev/null || true)"
  port="$(sed -n 4p "$pidfile" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'postgres' || return 1
  printf '%s %s\n' "$pid" "${port:-$PG_PORT}"
}

pg_initdb() {
  local data
  data="$(pg_data)"
  [ -f "$data/PG_VERSION" ] && return 0
  say "postgres: initdb (first run only)..."
  rm -rf "$data"
  mkdir -p "$data"
  chmod 700 "$data"
  is_root && chown "$PG_OS_USER:" "$data"
  if ! pg_as "$PG_BIN/initdb" -D "$data" --auth=trust -U "$PG_USER" -E UTF8 --locale=C \
        >"$PG_ROOT/initdb.log" 2>&1; then
    cat "$PG_ROOT/initdb.log" >&2
    die "postgres: initdb failed (see $PG_ROOT/initdb.log)"
  fi
  printf "\n# polycopy: per-start settings written by infra/local.sh\ninclude_if_exists = 'polycopy.conf'\n" \
    | pg_as tee -a "$data/postgresql.conf" >/dev/null
}

pg_write_conf() {
  local data sock
  data="$(pg_data)"
  sock="$(pg_socket_dir)"
  pg_as tee "$data/polycopy.conf" >/dev/null <<EOF
# Written by infra/local.sh on every start; edits are overwritten.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sock'
max_connections = 100
logging_collector = off
EOF
}

pg_psql() {
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U "$PG_USER" "${@:2}"
}

postgres_up() {
  if [ -n "${DATABASE_URL:-}" ]; then
    say "postgres: using external PostgreSQL at $(printf '%s' "$DATABASE_URL" | sed 's|//[^@/]*@|//***@|') (DATABASE_URL is set)"
    return 0
  fi
  pg_ensure_os_user
  pg_layout
  local running pid port
  if running="$(pg_running)"; then
    read -r pid port <<<"$running"
    say "postgres: already running (pid $pid) on 127.0.0.1:$port"
    pg_ensure_bin
    pg_ensure_db "$port"
    return 0
  fi
  pg_ensure_bin
  if port_open "$PG_PORT"; then
    die "postgres: port 127.0.0.1:$PG_PORT is already in use by another process $(port_owner "$PG_PORT"); stop it or set POLYCOPY_PG_PORT"
  fi
  local sock
  sock="$(pg_socket_dir)"
  mkdir -p "$PG_ROOT/log" "$sock"
  if is_root; then
    chown "$PG_OS_USER:" "$PG_ROOT" "$PG_ROOT/log"
    [ "$sock" = /tmp ] || chown "$PG_OS_USER:" "$sock"
  fi
  pg_initdb
  pg_write_conf

  local t0
  t0="$(now)"
  if ! pg_as "$PG_BIN/pg_ctl" -D "$(pg_data)" -l "$PG_ROOT/log/postgresql.log" -w -t 60 -s start; then
    tail -n 30 "$PG_ROOT/log/postgresql.log" >&2 || true
    die "postgres: failed to start (see $PG_ROOT/log/postgresql.log)"
  fi
  pg_ensure_db "$PG_PORT"
  read -r pid port <<<"$(pg_running)"
  say "postgres: started (pid $pid) on 127.0.0.1:$port, ready in $(elapsed "$t0") s"
}

pg_ensure_db() {
  local port="$1"
  if [ "$(pg_psql "$port" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]; then
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U "$PG_USER" "$PG_DB" ||
      die "postgres: createdb $PG_DB failed"
    say "postgres: created database $PG_DB"
  fi
}

postgres_down() {
  pg_layout_existing || { say "postgres: not running"; return 0; }
  local running pid port
  if ! running="$(pg_running)"; then
    say "postgres: not running"
    return 0
  fi
  read -r pid port <<<"$running"
  pg_ensure_bin
  say "postgres: stopping (pid $pid)..."
  pg_as "$PG_BIN/pg_ctl" -D "$(pg_data)" -m fast -w -t 60 -s stop ||
    die "postgres: pg_ctl stop failed (see $PG_ROOT/log/postgresql.log)"
  say "postgres: stopped"
}

# Like pg_layout but never creates anything; fails if there is no state.
pg_layout_existing() {
  [ -e "$DATA_DIR/postgres" ] || return 1
  PG_ROOT="$(readlink -f "$DATA_DIR/postgres")"
  [ -d "$PG_ROOT" ]
}

postgres_status() {
  local ext="" running pid port
  [ -n "${DATABASE_URL:-}" ] && ext=" (DATABASE_URL is set: clients use that)"
  if pg_layout_existing && running="$(pg_running)"; then
    read -r pid port <<<"$running"
    say "postgres: running (pid $pid) on 127.0.0.1:$port$ext"
  else
    say "postgres: stopped$ext"
  fi
}

# ------------------------------------------------------------------- main ---

usage() {
  cat >&2 <<EOF
usage: $0 {up|down|status|kafka-up|kafka-down|postgres-up|postgres-down}
  up        start Kafka (127.0.0.1:$KAFKA_PORT) and PostgreSQL (127.0.0.1:$PG_PORT)
  down      stop both (data in $DATA_DIR is kept)
  status    one line per service
EOF
}

main() {
  local cmd="${1:-}"
  case "$cmd" in
    up)            mkdir -p "$DATA_DIR"; kafka_up; postgres_up ;;
    down)          kafka_down; postgres_down ;;
    status)        kafka_status; postgres_status ;;
    kafka-up)      mkdir -p "$DATA_DIR"; kafka_up ;;
    kafka-down)    kafka_down ;;
    postgres-up)   mkdir -p "$DATA_DIR"; postgres_up ;;
    postgres-down) postgres_down ;;
    -h|--help|help) usage ;;
    *)             usage; exit 2 ;;
  esac
}

main "$@"

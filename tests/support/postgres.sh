# A throwaway PostgreSQL server for the test run. Source this file, then:
#
#   pg_install   # apt-get installs the server and libpq-dev when missing
#   pg_start     # starts a server, exports DATABASE_URL (and WYRM_PG_RESTART,
#                # a command that crashes and restarts it), stops it on exit
#
# The server lives in a fresh temporary directory (data and Unix socket),
# listens on 127.0.0.1 only, on a random free port, with trust
# authentication: nothing outside this machine can reach it, and it is gone
# when the shell exits. fsync is switched off (the data is thrown away, and
# only an operating-system crash could lose what was written), but commits
# stay synchronous: tests/soak.rs crashes the server mid-run, and a commit
# acknowledged and then lost would reuse its position (see docs/reliability.md).
#
# Any failure prints why and exits non-zero: a run must never look green
# because PostgreSQL silently did not run.

pg_fail() {
  echo "postgres.sh: $*" >&2
  exit 1
}

# The newest installed server's bin directory (Debian's layout, else
# wherever initdb is on the PATH), if any.
pg_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$dir" ] && command -v initdb >/dev/null; then
    dir=$(dirname "$(command -v initdb)")
  fi
  if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
    echo "$dir"
  fi
}

# Whether libpq can be linked: pq-sys asks pkg-config, then pg_config.
# (Debian's postgresql-common has a pg_config of its own that only says to
# install libpq-dev, so the library itself is what is checked.)
pg_have_libpq() {
  pkg-config --exists libpq 2>/dev/null && return 0
  local libdir
  libdir=$(pg_config --libdir 2>/dev/null) || return 1
  [ -e "$libdir/libpq.so" ]
}

pg_install() {
  local need=()
  [ -n "$(pg_bindir)" ] || need+=(postgresql)
  pg_have_libpq || need+=(libpq-dev)
  if [ "${#need[@]}" -eq 0 ]; then
    return 0
  fi
  [ "$(id -u)" -eq 0 ] || pg_fail "missing ${need[*]}; install them (apt-get install ${need[*]}) or run as root"
  echo "== apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update || pg_fail "apt-get update failed"
  apt-get install -y --no-install-recommends "${need[@]}" || pg_fail "apt-get install ${need[*]} failed"
  [ -n "$(pg_bindir)" ] || pg_fail "installed postgresql, but found no initdb under /usr/lib/postgresql/*/bin"
  pg_have_libpq || pg_fail "installed libpq-dev, but neither pkg-config nor pg_config finds libpq"
}

# Stops the server and removes its directory (data, socket, logs).
pg_stop() {
  if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR" ]; then
    if [ -f "$PG_DIR/data/postmaster.pid" ]; then
      $PG_AS "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PG_DIR"
  fi
  PG_DIR=
}

# Whether something already listens on 127.0.0.1:$1.
pg_port_taken() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pg_start() {
  PG_BIN=$(pg_bindir)
  [ -n "$PG_BIN" ] || pg_fail "no PostgreSQL server installed (call pg_install first)"
  # initdb and postgres refuse to run as root; Debian's package creates the
  # `postgres` system user for this.
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || pg_fail "running as root, but there is no 'postgres' user to run the server as"
    PG_AS="runuser -u postgres --"
    PG_DIR=$(mktemp -d /tmp/wyrm-pg.XXXXXX) || pg_fail "cannot create a temporary directory"
    chown postgres: "$PG_DIR"
  else
    PG_AS=""
    PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/wyrm-pg.XXXXXX") || pg_fail "cannot create a temporary directory"
  fi
  trap pg_stop EXIT
  # The superuser is named `postgres` whoever runs initdb, so the URL below
  # is the same for root (CI) and for a developer's own account.
  if ! $PG_AS "$PG_BIN/initdb" -D "$PG_DIR/data" --username=postgres --auth=trust \
    --encoding=UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1; then
    cat "$PG_DIR/initdb.log" >&2
    pg_fail "initdb failed (log above)"
  fi
  local attempt port
  for attempt in 1 2 3 4 5 6 7 8; do
    port=$((20000 + RANDOM % 40000))
    pg_port_taken "$port" && continue
    # -k: the Unix socket goes in our own directory, not /var/run/postgresql
    # (which may not exist, and may belong to a system cluster).
    if $PG_AS "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_DIR -c fsync=off -c full_page_writes=off -c max_connections=200" \
      start >/dev/null; then
      export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
      # How tests/soak.rs crashes and restarts the server mid-run.
      export WYRM_PG_RESTART="$PG_AS $PG_BIN/pg_ctl -D $PG_DIR/data -l $PG_DIR/server.log -w -t 60 -m immediate restart >/dev/null"
      echo "== PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($PG_DIR)"
      return 0
    fi
    # Another process may have taken the port between the check and the bind.
    grep -q "could not bind\|could not create any TCP/IP sockets" "$PG_DIR/server.log" 2>/dev/null || break
  done
  cat "$PG_DIR/server.log" >&2 2>/dev/null || true
  pg_fail "could not start PostgreSQL (server log above)"
}

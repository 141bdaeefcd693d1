#!/usr/bin/env bash
# Runs a command against a throw-away single-node Docker Swarm.
#
# Usage: tests/engine.sh COMMAND [ARGS...]
#   e.g. tests/engine.sh cargo test --all-targets
#
# The command runs with
#   SWARMSEAL_TEST_DOCKER_HOST  the engine's endpoint (unix:///tmp/sse.XXXXXX/sock)
#   SWARMSEAL_TEST_IMAGE        a local image (busybox) that services can run
# and WITHOUT DOCKER_HOST, DOCKER_CONTEXT, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, DOCKER_API_VERSION
# (and with an empty DOCKER_CONFIG), so nothing in the test suite can reach the developer's own
# engine by accident. Exits with the command's status.
#
# Where the engine comes from:
#   1. SWARMSEAL_TEST_USE_DOCKER_HOST=1 with DOCKER_HOST=unix://...|tcp://... : that engine is used
#      (it must be a swarm manager); the test image is imported there if missing. It is never
#      stopped, but the tests create and remove secrets and services on it.
#   2. Otherwise, as root with dockerd installed (Debian: apt-get install docker.io age
#      busybox-static): a private dockerd with its own data-root, exec-root and socket under
#      /tmp/sse.XXXXXX and its own network namespace (so swarm's fixed ports 2377/7946/4789 clash
#      with nothing; without unshare it shares the host's and picks a free port), turned into a
#      single-node swarm on 127.0.0.1. It is torn down afterwards: services removed, containers
#      gone, dockerd stopped, leftover processes killed, mounts unmounted, folder removed.
#      It cannot pull images (no network): use SWARMSEAL_TEST_IMAGE.
#   3. Otherwise no engine: with SWARMSEAL_REQUIRE_ENGINE=1 this fails (exit 1) without running the
#      command; without it, the command runs without SWARMSEAL_TEST_DOCKER_HOST and engine tests
#      skip with a note.
#
# Testing knobs:
#   SWARMSEAL_TEST_NO_ENGINE=1   pretend no engine can be provided (exercises case 3).
#   SWARMSEAL_TEST_KEEP_LOG=1    keep a copy of the private dockerd log in /tmp on exit.

# shellcheck disable=SC2317 # shellcheck 0.9 thinks functions used only by traps are unreachable
set -euo pipefail

readonly IMAGE=swarmseal-test/busybox:1
readonly START_TIMEOUT=30 # seconds for dockerd to answer on its socket
readonly STOP_TIMEOUT=30  # seconds for containers to go away / dockerd to exit

log() { printf 'engine.sh: %s\n' "$*" >&2; }
die() {
  printf 'engine.sh: error: %s\n' "$*" >&2
  exit 1
}

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
  sed -n '2,/^$/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
fi

# Everything the harness creates lives here (also for an external engine: the private, empty
# DOCKER_CONFIG). Kept short: unix socket paths are limited to 108 bytes.
STATE=$(mktemp -d /tmp/sse.XXXXXX)
DOCKERD_PID=""
ENGINE_HOST=""
OWN_ENGINE=0
CHILD_PID=""
CLEANED=0

# --- helpers ------------------------------------------------------------------------------------

# docker CLI against the engine this script provides; never the developer's configuration.
dk() {
  env -u DOCKER_HOST -u DOCKER_CONTEXT -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH \
    -u DOCKER_API_VERSION DOCKER_CONFIG="$STATE/docker-config" \
    docker -H "$ENGINE_HOST" "$@"
}

now() { date +%s; }
# Seconds (one decimal) from $1 to $2 (default: now), both taken from $EPOCHREALTIME.
since() { awk -v a="$1" -v b="${2:-$EPOCHREALTIME}" 'BEGIN { printf "%.1f", b - a }'; }

# A TCP port on 127.0.0.1 that nothing listens on right now (random, not 2377: several harnesses
# may run on one machine). Swarm init is retried with another port if it races.
free_port() {
  local port i
  for ((i = 0; i < 200; i++)); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  die "could not find a free TCP port on 127.0.0.1"
}

# Pids of what is left of this engine: processes whose command line names our private folder
# (dockerd, its containerd, containerd-shims) and processes in the cgroup of one of its containers
# (a container's own processes do not name the folder).
engine_pids() {
  local d pid id ids=() args lines
  for d in "$STATE"/data/containers/*/; do
    [[ -d $d ]] && ids+=("$(basename "$d")")
  done
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [[ $pid == "$$" ]] && continue
    mapfile -d '' args 2>/dev/null <"$d/cmdline" || continue
    if [[ "${args[*]}" == *"$STATE/"* ]]; then
      echo "$pid"
      continue
    fi
    ((${#ids[@]})) || continue
    mapfile -t lines 2>/dev/null <"$d/cgroup" || continue
    for id in "${ids[@]}"; do
      if [[ "${lines[*]}" == *"$id"* ]]; then
        echo "$pid"
        break
      fi
    done
  done
}

# Mount points at or below the state folder, deepest first.
mounts_under_state() {
  awk -v d="$STATE" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
    awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-
}

# Whether a process exists and is not a zombie (no `wait`: bash's wait in a trap that interrupted
# another wait has been seen to hang).
pid_running() {
  local stat
  [[ -n $1 ]] || return 1
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

dockerd_alive() { pid_running "$DOCKERD_PID"; }

log_tail() {
  if [[ -f $STATE/dockerd.log ]]; then
    echo "--- last lines of $STATE/dockerd.log ---" >&2
    tail -n 30 "$STATE/dockerd.log" >&2 || true
    echo "---" >&2
  fi
}

# --- teardown -----------------------------------------------------------------------------------

stop_own_engine() {
  local t0 t1 t2 deadline ids mp d
  t0=$EPOCHREALTIME
  t1=$t0
  if dockerd_alive; then
    # Services first (their tasks' containers hold secret tmpfs mounts). Their containers are
    # then force-removed rather than left to the stop grace period (10 s by default, and a
    # `sleep` as PID 1 ignores SIGTERM), and we wait until the engine reports none.
    ids=$(dk service ls -q 2>/dev/null || true)
    if [[ -n $ids ]]; then
      # shellcheck disable=SC2086 # word splitting of ids is intended
      dk service rm $ids >/dev/null 2>&1 || true
    fi
    deadline=$(($(now) + STOP_TIMEOUT))
    while ids=$(dk ps -aq 2>/dev/null) && [[ -n $ids ]]; do
      if (($(now) >= deadline)); then
        log "warning: containers still present ${STOP_TIMEOUT}s after removing them: ${ids//$'\n'/ }"
        break
      fi
      # shellcheck disable=SC2086 # word splitting of ids is intended
      dk rm -f $ids >/dev/null 2>&1 || true
      sleep 0.5
    done

    t1=$EPOCHREALTIME
    kill -TERM "$DOCKERD_PID" 2>/dev/null || true
    deadline=$(($(now) + STOP_TIMEOUT))
    while dockerd_alive; do
      if (($(now) >= deadline)); then
        log "warning: dockerd (pid $DOCKERD_PID) did not exit ${STOP_TIMEOUT}s after SIGTERM; killing it"
        kill -KILL "$DOCKERD_PID" 2>/dev/null || true
        break
      fi
      sleep 0.2
    done
  fi
  t2=$EPOCHREALTIME

  # Whatever is left of this engine (after dockerd died or was killed): containers first, then
  # containerd and its shims.
  local left
  left=$(engine_pids)
  if [[ -n $left ]]; then
    log "killing leftover processes of the engine: ${left//$'\n'/ }"
    # shellcheck disable=SC2086 # word splitting of pids is intended
    kill -KILL $left 2>/dev/null || true
    deadline=$(($(now) + 10))
    while [[ -n $(engine_pids) ]] && (($(now) < deadline)); do
      sleep 0.2
    done
  fi

  # A dockerd stopped under running containers leaves mounts (secret tmpfs, overlay, netns).
  while read -r mp; do
    [[ -n $mp ]] || continue
    umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || log "warning: could not unmount $mp"
  done < <(mounts_under_state)

  # ... and, after a kill, the containers' cgroups.
  for d in "$STATE"/data/containers/*/; do
    [[ -d $d ]] || continue
    find /sys/fs/cgroup -maxdepth 4 -type d -name "*$(basename "$d")*" 2>/dev/null |
      sort -r | xargs -r rmdir 2>/dev/null || true
  done
  log "engine stopped in $(since "$t0")s (containers $(since "$t0" "$t1")s, dockerd $(since "$t1" "$t2")s, leftovers $(since "$t2")s)"
}

cleanup() {
  local status=$?
  ((CLEANED)) && return 0
  CLEANED=1
  trap - EXIT
  trap '' INT TERM # teardown is bounded; do not leave it half-done
  if ((OWN_ENGINE)); then
    stop_own_engine || log "warning: engine teardown failed"
    if [[ ${SWARMSEAL_TEST_KEEP_LOG:-} == 1 && -f $STATE/dockerd.log ]]; then
      cp "$STATE/dockerd.log" "/tmp/swarmseal-dockerd.$$.log" &&
        log "dockerd log kept at /tmp/swarmseal-dockerd.$$.log"
    fi
  fi
  if [[ -n $(mounts_under_state) ]]; then
    log "warning: mounts remain under $STATE; not removing it"
  else
    rm -rf "$STATE"
  fi
  return "$status"
}

on_signal() {
  local sig=$1 code=$2
  log "caught SIG$sig; stopping"
  if pid_running "$CHILD_PID"; then
    kill -"$sig" "$CHILD_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do
      pid_running "$CHILD_PID" || break
      sleep 0.2
    done
    if pid_running "$CHILD_PID"; then
      log "warning: the command (pid $CHILD_PID) is still running 10s after SIG$sig; killing it"
      kill -KILL "$CHILD_PID" 2>/dev/null || true
    fi
  fi
  cleanup
  exit "$code"
}

trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM

# --- the engine ---------------------------------------------------------------------------------

import_image() {
  if dk image inspect "$IMAGE" >/dev/null 2>&1; then
    return 0
  fi
  local bb root tool
  bb=$(command -v busybox || true)
  [[ -n $bb ]] || die "busybox is not installed (Debian: apt-get install busybox-static)"
  if LC_ALL=C grep -qa '/ld-linux' "$bb"; then
    die "$bb is dynamically linked; the test image needs a static one (apt-get install busybox-static)"
  fi
  root=$STATE/image
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/run"
  cp "$bb" "$root/bin/busybox"
  for tool in sh cat sleep ls echo true false test env id stat wc head od sha256sum; do
    ln -s busybox "$root/bin/$tool"
  done
  tar -C "$root" -c . | dk import -c 'ENV PATH=/bin' -c 'CMD ["sleep","3600"]' - "$IMAGE" >/dev/null ||
    die "docker import of $IMAGE failed"
  rm -rf "$root"
}

use_external_engine() {
  ENGINE_HOST=$DOCKER_HOST
  case $ENGINE_HOST in
  unix://* | tcp://*) ;;
  *) die "SWARMSEAL_TEST_USE_DOCKER_HOST=1: DOCKER_HOST=$ENGINE_HOST is not unix:// or tcp:// (the only schemes the tests support)" ;;
  esac
  if [[ -n ${DOCKER_TLS_VERIFY:-} || -n ${DOCKER_CERT_PATH:-} ]]; then
    die "SWARMSEAL_TEST_USE_DOCKER_HOST=1: TLS engines (DOCKER_TLS_VERIFY/DOCKER_CERT_PATH) are not supported by the test harness"
  fi
  local manager
  manager=$(dk info --format '{{.Swarm.ControlAvailable}}' 2>"$STATE/info.err") ||
    die "SWARMSEAL_TEST_USE_DOCKER_HOST=1: cannot reach the engine at $ENGINE_HOST: $(cat "$STATE/info.err")"
  [[ $manager == true ]] ||
    die "SWARMSEAL_TEST_USE_DOCKER_HOST=1: the engine at $ENGINE_HOST is not a swarm manager (docker info: Swarm.ControlAvailable=$manager); run 'docker swarm init' there or use another engine"
  import_image
  log "using the existing engine at $ENGINE_HOST (SWARMSEAL_TEST_USE_DOCKER_HOST=1); it is not stopped afterwards"
}

# Brings up the loopback interface of the current (new) network namespace, then runs "$@".
# Used as `unshare --net bash -c "$LO_UP_AND_EXEC" ...`: ip from iproute2, else busybox's.
# shellcheck disable=SC2016 # expanded by the inner shell
readonly LO_UP_AND_EXEC='
  if command -v ip >/dev/null; then ip link set lo up; else busybox ip link set lo up; fi || exit 1
  exec "$@"'

start_own_engine() {
  local t0 deadline port tries out netns=()
  t0=$EPOCHREALTIME
  ENGINE_HOST=unix://$STATE/sock
  mkdir -p "$STATE/data" "$STATE/exec"
  OWN_ENGINE=1
  # A network namespace of its own, when we may create one: swarm's fixed ports (7946 gossip,
  # 4789 VXLAN) then collide neither with the developer's swarm nor with another harness. The
  # API socket is a path, reachable from any namespace.
  if unshare --net bash -c "$LO_UP_AND_EXEC" sh true 2>/dev/null; then
    netns=(unshare --net bash -c "$LO_UP_AND_EXEC" sh)
  else
    log "note: cannot create a network namespace; the engine shares the host's network"
  fi
  # --containerd-namespace: should dockerd find a system containerd, keep our objects apart.
  # setsid: the engine is not in our process group, so a Ctrl-C does not hit it mid-teardown.
  setsid "${netns[@]}" dockerd \
    --data-root "$STATE/data" \
    --exec-root "$STATE/exec" \
    --pidfile "$STATE/pid" \
    -H "$ENGINE_HOST" \
    --bridge=none --iptables=false --ip6tables=false \
    --containerd-namespace "sse-${STATE##*.}" \
    --containerd-plugins-namespace "sse-${STATE##*.}-plugins" \
    </dev/null >"$STATE/dockerd.log" 2>&1 &
  DOCKERD_PID=$!

  deadline=$(($(now) + START_TIMEOUT))
  until dk version >/dev/null 2>&1; do
    if ! dockerd_alive; then
      log_tail
      die "the private dockerd exited during start-up (log above)"
    fi
    if (($(now) >= deadline)); then
      log_tail
      die "the private dockerd did not answer on $ENGINE_HOST within ${START_TIMEOUT}s (log above)"
    fi
    sleep 0.2
  done

  # In its own namespace any port is free; in the host's, pick one (not 2377: another swarm).
  for tries in 1 2 3; do
    if ((${#netns[@]})); then port=2377; else port=$(free_port); fi
    if out=$(dk swarm init --advertise-addr "127.0.0.1:$port" --listen-addr "127.0.0.1:$port" 2>&1); then
      break
    fi
    if ((tries == 3)); then
      log_tail
      die "docker swarm init failed: $out"
    fi
    log "swarm init on port $port failed ($out); retrying"
  done
  import_image
  log "private swarm ready at $ENGINE_HOST in $(since "$t0")s"
}

no_engine() {
  local why=$1
  shift
  if [[ ${SWARMSEAL_REQUIRE_ENGINE:-} == 1 ]]; then
    local args
    args=$(printf ' %q' "$@")
    die "SWARMSEAL_REQUIRE_ENGINE=1 but no Docker engine can be provided: $why.
  Run as root with Docker installed (Debian: apt-get install docker.io age busybox-static),
  or opt in to an existing swarm manager:
    SWARMSEAL_TEST_USE_DOCKER_HOST=1 DOCKER_HOST=unix:///var/run/docker.sock $0$args"
  fi
  log "warning: no Docker engine ($why); engine tests will be skipped"
}

mkdir -p "$STATE/docker-config"

if [[ ${SWARMSEAL_TEST_NO_ENGINE:-} == 1 ]]; then
  no_engine "SWARMSEAL_TEST_NO_ENGINE=1 is set" "$@"
elif [[ ${SWARMSEAL_TEST_USE_DOCKER_HOST:-} == 1 ]]; then
  [[ -n ${DOCKER_HOST:-} ]] ||
    die "SWARMSEAL_TEST_USE_DOCKER_HOST=1 but DOCKER_HOST is not set; set it to the engine to use (unix://... or tcp://...)"
  command -v docker >/dev/null || die "the docker CLI is not installed"
  use_external_engine
elif [[ $(id -u) != 0 ]]; then
  no_engine "not running as root (a private dockerd needs root)" "$@"
elif ! command -v dockerd >/dev/null; then
  no_engine "dockerd is not installed" "$@"
elif ! command -v docker >/dev/null; then
  no_engine "the docker CLI is not installed" "$@"
else
  start_own_engine
fi

# --- the command --------------------------------------------------------------------------------

unset DOCKER_HOST DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH DOCKER_API_VERSION
export DOCKER_CONFIG=$STATE/docker-config
export SWARMSEAL_TEST_IMAGE=$IMAGE
if [[ -n $ENGINE_HOST ]]; then
  export SWARMSEAL_TEST_DOCKER_HOST=$ENGINE_HOST
else
  unset SWARMSEAL_TEST_DOCKER_HOST
fi

# In the background so that a signal reaches our trap at once; `trap -` undoes the SIGINT/SIGQUIT
# ignore bash gives background jobs, `<&0` keeps stdin (bash would give them /dev/null) unless
# there is none (CI may close it).
if { : 3<&0; } 2>/dev/null; then
  (
    trap - INT QUIT
    exec "$@"
  ) <&0 &
else
  (
    trap - INT QUIT
    exec "$@"
  ) </dev/null &
fi
CHILD_PID=$!
status=0
wait "$CHILD_PID" || status=$?
CHILD_PID=""
exit "$status"

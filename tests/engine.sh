#!/usr/bin/env bash
# Runs a command against a throw-away single-node Docker Swarm.
#
# Usage: tests/engine.sh COMMAND [ARGS...]
#   e.g. tests/engine.sh cargo test --all-targets -- --include-ignored
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
#      (run with --include-ignored) skip with a note.
#
# Testing knobs:
#   SWARMSEAL_TEST_NO_ENGINE=1   pretend no engine can be provided (exercises case 3).
#   SWARMSEAL_TEST_KEEP_LOG=1    keep a copy of the private dockerd log in /tmp on exit.

# shellcheck disable=SC2317 # shellcheck 0.9 thinks functions used only by traps are unreachable
set -euo pipefail

readonly IMAGE=swarmseal-test/busybox:1

# Starting, stopping and cleaning up a private dockerd: shared with the tests that need
# engines of their own.
# shellcheck source=tests/node.sh
source "$(dirname "${BASH_SOURCE[0]}")/node.sh"

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
free_port() { node_free_port || die "could not find a free TCP port on 127.0.0.1"; }

# --- teardown -----------------------------------------------------------------------------------

stop_own_engine() {
  local t0
  t0=$EPOCHREALTIME
  node_stop "$STATE"
  log "engine stopped in $(since "$t0")s"
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
  if [[ -n $(node_mounts "$STATE") ]]; then
    log "warning: mounts remain under $STATE; not removing it"
  else
    rm -rf "$STATE"
  fi
  return "$status"
}

on_signal() {
  local sig=$1 code=$2
  log "caught SIG$sig; stopping"
  if node_pid_running "$CHILD_PID"; then
    kill -"$sig" "$CHILD_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do
      node_pid_running "$CHILD_PID" || break
      sleep 0.2
    done
    if node_pid_running "$CHILD_PID"; then
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

import_image() { node_image "$STATE"; }

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

start_own_engine() {
  local t0 port tries out shared
  t0=$EPOCHREALTIME
  ENGINE_HOST=unix://$STATE/sock
  OWN_ENGINE=1
  # In a network namespace of its own when one can be made: swarm's fixed ports (7946
  # gossip, 4789 VXLAN) then collide neither with the developer's swarm nor with another
  # harness. The API socket is a path, reachable from any namespace.
  shared=$(node_start "$STATE")
  [[ -z $shared ]] || log "note: cannot create a network namespace; the engine shares the host's network"
  # In its own namespace any port is free; in the host's, pick one (not 2377: another swarm).
  for tries in 1 2 3; do
    if [[ -z $shared ]]; then port=2377; else port=$(free_port); fi
    if out=$(dk swarm init --advertise-addr "127.0.0.1:$port" --listen-addr "127.0.0.1:$port" 2>&1); then
      break
    fi
    if ((tries == 3)); then
      node_log_tail "$STATE"
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

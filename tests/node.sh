#!/usr/bin/env bash
# Private Docker engines for the tests: start, stop, kill and clean up a dockerd that lives in
# one folder (data-root, exec-root, socket, pidfile, log), and the network namespaces that give
# several of them their own addresses. Used by tests/engine.sh (sourced) and by the tests that
# need engines of their own: the fault tests stop and restart one mid-apply, the cluster test
# kills a leader (run as a command).
#
# Usage (as root, with Debian's docker.io and iproute2):
#   tests/node.sh start DIR [NETNS]        dockerd in DIR (in network namespace NETNS, else in
#                                          a new anonymous one, or in the host's with
#                                          NODE_SHARED_NET=1; NODE_DOCKERD_ARGS adds
#                                          arguments); waits until it answers
#   tests/node.sh stop DIR                 services, containers, then dockerd; unmounts leftovers
#   tests/node.sh halt DIR                 SIGTERM dockerd alone (services stay; start brings
#                                          the engine back with them)
#   tests/node.sh kill DIR                 SIGKILL dockerd and what is left of it (a crash)
#   tests/node.sh destroy DIR              stop, then remove DIR
#   tests/node.sh image DIR                import the busybox test image (swarmseal-test/busybox:1)
#   tests/node.sh net-up NAME N            a bridge namespace NAME-br and N namespaces NAME-1..N
#                                          with addresses 10.213.0.11.. on it (own addresses,
#                                          nothing outside this machine)
#   tests/node.sh net-down NAME N          removes them
#   tests/node.sh addr I                   the address of namespace I (10.213.0.1I)
# The socket is unix://DIR/sock. Every step is bounded in time.

# shellcheck disable=SC2317 # functions are called from the dispatcher at the end, or by engine.sh
set -euo pipefail

readonly NODE_IMAGE=swarmseal-test/busybox:1
readonly NODE_START_TIMEOUT=30 # seconds for dockerd to answer on its socket
readonly NODE_STOP_TIMEOUT=30  # seconds for containers to go away / dockerd to exit

node_log() { printf 'node.sh: %s\n' "$*" >&2; }
node_die() {
  printf 'node.sh: error: %s\n' "$*" >&2
  exit 1
}
node_now() { date +%s; }

# A random TCP port on 127.0.0.1 that nothing listens on right now; fails (status 1) when 200
# tries found none.
node_free_port() {
  local port i
  for ((i = 0; i < 200; i++)); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

# docker CLI against the engine in DIR; never the developer's configuration.
node_dk() {
  local dir=$1
  shift
  env -u DOCKER_HOST -u DOCKER_CONTEXT -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH \
    -u DOCKER_API_VERSION DOCKER_CONFIG="$dir/docker-config" \
    docker -H "unix://$dir/sock" "$@"
}

# Whether a process exists and is not a zombie.
node_pid_running() {
  local stat
  [[ -n ${1:-} ]] || return 1
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

node_dockerd_pid() {
  local pid=""
  [[ -f $1/pid ]] && read -r pid <"$1/pid" 2>/dev/null
  echo "$pid"
}

# Pids of what is left of the engine in DIR: processes whose command line names the folder
# (dockerd, its containerd, containerd-shims) and processes in the cgroup of one of its
# containers (a container's own processes do not name the folder).
node_pids() {
  local dir=$1 d pid id ids=() args lines
  for d in "$dir"/data/containers/*/; do
    [[ -d $d ]] && ids+=("$(basename "$d")")
  done
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [[ $pid == "$$" ]] && continue
    mapfile -d '' args 2>/dev/null <"$d/cmdline" || continue
    if [[ "${args[*]}" == *"$dir/"* ]]; then
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

# Mount points at or below DIR, deepest first.
node_mounts() {
  awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
    awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-
}

node_log_tail() {
  if [[ -f $1/dockerd.log ]]; then
    echo "--- last lines of $1/dockerd.log ---" >&2
    tail -n 30 "$1/dockerd.log" >&2 || true
    echo "---" >&2
  fi
}

# Brings up the loopback interface of the current (new) network namespace, then runs "$@".
# shellcheck disable=SC2016 # expanded by the inner shell
readonly NODE_LO_UP_AND_EXEC='
  if command -v ip >/dev/null; then ip link set lo up; else busybox ip link set lo up; fi || exit 1
  exec "$@"'

# node_start DIR [NETNS]: dockerd in DIR, in network namespace NETNS (else a new anonymous
# one, or the host's when none can be made); returns once it answers. Prints "shared" when it
# shares the host's network (the caller must then pick free ports).
node_start() {
  local dir=$1 netns_name=${2:-} deadline netns=() tag
  mkdir -p "$dir/data" "$dir/exec" "$dir/docker-config"
  if [[ ${NODE_SHARED_NET:-} == 1 ]]; then
    echo shared # the host's network: a TCP listener (-H tcp://...) is reachable from here
  elif [[ -n $netns_name ]]; then
    # nsenter, not `ip netns exec`: that one mounts a new /sys, hiding the cgroup mounts
    # dockerd needs ("Devices cgroup isn't mounted").
    netns=(nsenter "--net=/run/netns/$netns_name")
  elif unshare --net bash -c "$NODE_LO_UP_AND_EXEC" sh true 2>/dev/null; then
    netns=(unshare --net bash -c "$NODE_LO_UP_AND_EXEC" sh)
  else
    echo shared
  fi
  tag=$(basename "$dir" | tr -c 'a-zA-Z0-9\n' '-')
  # Extra dockerd arguments (a TLS listener, say), split on spaces.
  local extra=()
  read -r -a extra <<<"${NODE_DOCKERD_ARGS:-}"
  # --containerd-namespace: should dockerd find a system containerd, keep our objects apart.
  # setsid: the engine is not in the caller's process group, so a Ctrl-C does not hit it
  # mid-teardown.
  setsid "${netns[@]}" dockerd \
    --data-root "$dir/data" \
    --exec-root "$dir/exec" \
    --pidfile "$dir/pid" \
    -H "unix://$dir/sock" \
    --bridge=none --iptables=false --ip6tables=false \
    --containerd-namespace "sse-$tag" \
    --containerd-plugins-namespace "sse-$tag-plugins" \
    "${extra[@]}" \
    </dev/null >>"$dir/dockerd.log" 2>&1 &
  local launcher=$!
  deadline=$(($(node_now) + NODE_START_TIMEOUT))
  until node_dk "$dir" version >/dev/null 2>&1; do
    if ! node_pid_running "$launcher" && ! node_pid_running "$(node_dockerd_pid "$dir")"; then
      node_log_tail "$dir"
      node_die "the private dockerd in $dir exited during start-up (log above)"
    fi
    if (($(node_now) >= deadline)); then
      node_log_tail "$dir"
      node_die "the private dockerd in $dir did not answer within ${NODE_START_TIMEOUT}s (log above)"
    fi
    sleep 0.2
  done
}

# node_halt DIR: stops dockerd with SIGTERM (it stops its containers) and waits for it,
# leaving its swarm state and services for the next start.
node_halt() {
  local dir=$1 pid deadline
  pid=$(node_dockerd_pid "$dir")
  node_pid_running "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$(($(node_now) + NODE_STOP_TIMEOUT))
  while node_pid_running "$pid"; do
    if (($(node_now) >= deadline)); then
      node_log "warning: dockerd (pid $pid) did not exit ${NODE_STOP_TIMEOUT}s after SIGTERM; killing it"
      node_kill "$dir"
      return 0
    fi
    sleep 0.2
  done
}

# node_kill DIR: SIGKILL dockerd and everything of its engine, at once (a crash).
node_kill() {
  local dir=$1 left deadline
  left=$(node_pids "$dir")
  if [[ -n $left ]]; then
    # shellcheck disable=SC2086 # word splitting of pids is intended
    kill -KILL $left 2>/dev/null || true
  fi
  deadline=$(($(node_now) + 10))
  while [[ -n $(node_pids "$dir") ]] && (($(node_now) < deadline)); do
    sleep 0.2
  done
}

# node_stop DIR: services first (their tasks' containers hold secret tmpfs mounts), their
# containers force-removed, then dockerd with SIGTERM; whatever is left is killed and its
# mounts and cgroups removed.
node_stop() {
  local dir=$1 ids deadline pid mp d
  pid=$(node_dockerd_pid "$dir")
  if node_pid_running "$pid"; then
    ids=$(node_dk "$dir" service ls -q 2>/dev/null || true)
    if [[ -n $ids ]]; then
      # shellcheck disable=SC2086 # word splitting of ids is intended
      node_dk "$dir" service rm $ids >/dev/null 2>&1 || true
    fi
    deadline=$(($(node_now) + NODE_STOP_TIMEOUT))
    while ids=$(node_dk "$dir" ps -aq 2>/dev/null) && [[ -n $ids ]]; do
      if (($(node_now) >= deadline)); then
        node_log "warning: containers still present ${NODE_STOP_TIMEOUT}s after removing them: ${ids//$'\n'/ }"
        break
      fi
      # shellcheck disable=SC2086 # word splitting of ids is intended
      node_dk "$dir" rm -f $ids >/dev/null 2>&1 || true
      sleep 0.5
    done
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$(($(node_now) + NODE_STOP_TIMEOUT))
    while node_pid_running "$pid"; do
      if (($(node_now) >= deadline)); then
        node_log "warning: dockerd (pid $pid) did not exit ${NODE_STOP_TIMEOUT}s after SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.2
    done
  fi
  node_kill "$dir"
  # A dockerd stopped under running containers leaves mounts (secret tmpfs, overlay, netns).
  while read -r mp; do
    [[ -n $mp ]] || continue
    umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || node_log "warning: could not unmount $mp"
  done < <(node_mounts "$dir")
  # ... and, after a kill, the containers' cgroups.
  for d in "$dir"/data/containers/*/; do
    [[ -d $d ]] || continue
    find /sys/fs/cgroup -maxdepth 4 -type d -name "*$(basename "$d")*" 2>/dev/null |
      sort -r | xargs -r rmdir 2>/dev/null || true
  done
}

node_destroy() {
  local dir=$1
  node_stop "$dir"
  if [[ -n $(node_mounts "$dir") ]]; then
    node_log "warning: mounts remain under $dir; not removing it"
  else
    rm -rf "$dir"
  fi
}

# node_image DIR: the busybox test image (sh, cat, sleep, ...), from Debian's busybox-static.
node_image() {
  local dir=$1 bb root tool
  if node_dk "$dir" image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
    return 0
  fi
  bb=$(command -v busybox || true)
  [[ -n $bb ]] || node_die "busybox is not installed (Debian: apt-get install busybox-static)"
  if LC_ALL=C grep -qa '/ld-linux' "$bb"; then
    node_die "$bb is dynamically linked; the test image needs a static one (apt-get install busybox-static)"
  fi
  root=$dir/image
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/run"
  cp "$bb" "$root/bin/busybox"
  for tool in sh cat sleep ls echo true false test env id stat wc head od sha256sum; do
    ln -s busybox "$root/bin/$tool"
  done
  tar -C "$root" -c . | node_dk "$dir" import -c 'ENV PATH=/bin' -c 'CMD ["sleep","3600"]' - "$NODE_IMAGE" >/dev/null ||
    node_die "docker import of $NODE_IMAGE failed"
  rm -rf "$root"
}

node_addr() { echo "10.213.0.1$1"; }

# node_net_up NAME N: namespace NAME-br with a bridge, and N namespaces NAME-1..N, each with
# a veth on the bridge and its own address (10.213.0.11, .12, ...).
node_net_up() {
  local name=$1 n=$2 i
  ip netns add "$name-br"
  ip -n "$name-br" link set lo up
  ip -n "$name-br" link add br0 type bridge
  ip -n "$name-br" link set br0 up
  for ((i = 1; i <= n; i++)); do
    ip netns add "$name-$i"
    ip -n "$name-$i" link set lo up
    ip link add "v$i" netns "$name-br" type veth peer name eth0 netns "$name-$i"
    ip -n "$name-br" link set "v$i" master br0 up
    ip -n "$name-$i" addr add "$(node_addr "$i")/24" dev eth0
    ip -n "$name-$i" link set eth0 up
  done
}

node_net_down() {
  local name=$1 n=$2 i
  for ((i = 1; i <= n; i++)); do
    ip netns del "$name-$i" 2>/dev/null || true
  done
  ip netns del "$name-br" 2>/dev/null || true
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  [[ $# -ge 2 ]] || {
    sed -n '2,/^$/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 2
  }
  cmd=$1
  shift
  case $cmd in
  start) node_start "$@" ;;
  stop) node_stop "$@" ;;
  halt) node_halt "$@" ;;
  kill) node_kill "$@" ;;
  destroy) node_destroy "$@" ;;
  image) node_image "$@" ;;
  net-up) node_net_up "$@" ;;
  net-down) node_net_down "$@" ;;
  addr) node_addr "$@" ;;
  *) node_die "unknown command $cmd" ;;
  esac
fi

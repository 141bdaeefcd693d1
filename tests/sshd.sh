#!/usr/bin/env bash
# A private sshd on loopback for the tests and the bench: a throwaway host key, a throwaway
# client key, and a private home for the client side, so that nothing of the machine's own
# ssh setup is read or changed.
#
# Usage (as root, with Debian's openssh-server and openssh-client):
#   tests/sshd.sh start DIR DOCKER_HOST   starts sshd on a free 127.0.0.1 port (printed), whose
#                                         sessions see DOCKER_HOST (so `docker system
#                                         dial-stdio` reaches that engine); DIR/home/.ssh holds
#                                         the client key (id_ed25519) and an empty config;
#                                         DIR/sshd.log has a line "Accepted publickey" per login;
#                                         $SSHD_CONFIG_EXTRA is added to sshd_config
#   tests/sshd.sh known DIR               adds the host key to DIR/home/.ssh/known_hosts
#   tests/sshd.sh run DIR CMD [ARGS...]   runs CMD with DIR/home over root's home folder, in a
#                                         mount namespace of its own: ssh reads ~/.ssh from the
#                                         home of the passwd entry, not from $HOME, and this is
#                                         how a test gives it a config of its own without
#                                         touching /root/.ssh
#   tests/sshd.sh stop DIR                stops sshd and removes DIR
set -euo pipefail

die() {
  printf 'sshd.sh: error: %s\n' "$*" >&2
  exit 1
}

# shellcheck source=tests/node.sh
source "$(dirname "${BASH_SOURCE[0]}")/node.sh"

free_port() { node_free_port || die "no free port on 127.0.0.1"; }

start() {
  local dir=$1 docker_host=$2 port i home
  [[ $(id -u) == 0 ]] || die "needs root"
  mkdir -p "$dir/home/.ssh"
  chmod 700 "$dir" "$dir/home" "$dir/home/.ssh"
  ssh-keygen -q -t ed25519 -N '' -C swarmseal-test-host -f "$dir/host_key"
  ssh-keygen -q -t ed25519 -N '' -C swarmseal-test-client -f "$dir/home/.ssh/id_ed25519"
  cp "$dir/home/.ssh/id_ed25519.pub" "$dir/authorized_keys"
  : >"$dir/home/.ssh/config"
  port=$(free_port)
  echo "$port" >"$dir/port"
  cat >"$dir/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
SetEnv DOCKER_HOST=$docker_host
LogLevel INFO
${SSHD_CONFIG_EXTRA:-}
EOF
  # The privilege separation folder sshd insists on (Debian's packaging makes it at boot).
  mkdir -p /run/sshd
  # The far side is a clean manager: sessions run in a mount namespace where root's home is
  # an empty folder, so the machine's own shell start-up files (~/.bashrc) are not read.
  mkdir -p "$dir/server-home"
  home=$(getent passwd "$(id -u)" | cut -d: -f6)
  # shellcheck disable=SC2016 # expanded by the inner shell
  unshare --mount --propagation private sh -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' \
    sh "$dir/server-home" "$home" /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log" ||
    die "sshd did not start: $(cat "$dir/sshd.log" 2>/dev/null)"
  for ((i = 0; i < 100; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
    sleep 0.05
  done
  die "sshd does not answer on 127.0.0.1:$port"
}

known() {
  local dir=$1 port
  port=$(cat "$dir/port")
  printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$dir/host_key.pub")" >>"$dir/home/.ssh/known_hosts"
}

run() {
  local dir=$1
  shift
  local home
  home=$(getent passwd "$(id -u)" | cut -d: -f6)
  # shellcheck disable=SC2016 # expanded by the inner shell
  exec unshare --mount --propagation private sh -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' \
    sh "$dir/home" "$home" "$@"
}

stop() {
  local dir=$1 pid
  if [[ -f $dir/sshd.pid ]]; then
    read -r pid <"$dir/sshd.pid" || true
    if [[ -n ${pid:-} ]]; then
      kill "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf "$dir"
}

[[ $# -ge 2 ]] || {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}
cmd=$1
shift
case $cmd in
start) start "$@" ;;
known) known "$@" ;;
run) run "$@" ;;
stop) stop "$@" ;;
*) die "unknown command $cmd" ;;
esac

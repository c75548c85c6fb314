# Sourced by compare.sh and tcp.sh: stopping the background processes a
# benchmark started, each wait bounded. The caller keeps their PIDs in
# the array PIDS (its EXIT trap stops whatever is still in it).
#   stop_wait PID   after a SIGTERM: waits up to 5 s, then SIGKILL; reaps
#   forget PID      no longer ours to stop (out of PIDS)
#   stop_pid PID    SIGTERM, stop_wait, forget
stop_wait() {
  local i
  for i in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
forget() {
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  stop_wait "$1"
  forget "$1"
}

# scripts/lib/ports.sh — sourced by scripts/test, tests/e2e/stack.sh and bench/*.sh.
#   tsi_free_port   prints a TCP port on 127.0.0.1 that nothing listens on now, chosen
#                   below the kernel's ephemeral range (net.ipv4.ip_local_port_range), so
#                   no outgoing connection of this machine can take it between the choice
#                   and the bind. For servers that cannot choose their own port
#                   (PostgreSQL, the simulator in benchmarks); `tsi serve --port 0` picks
#                   its own port and logs it ("listening port=N"), which is better still.
tsi_free_port() {
  local lo=20000 hi=32767 eph p
  eph=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "${eph:-0}" -gt 21000 ] 2>/dev/null && hi=$((eph - 1))
  for _ in $(seq 1 200); do
    p=$((lo + RANDOM % (hi - lo + 1)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  echo "tsi_free_port: no free port between $lo and $hi" >&2
  return 1
}

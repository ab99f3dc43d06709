#!/bin/sh
# The asterisk container's health check: Asterisk answers on its control socket and reports
# its uptime. (`asterisk -rx` exits 0 even for a command it does not know, so its exit
# status alone proves little beyond the socket.)
out="$(asterisk -rx 'core show uptime' 2>&1)" || { echo "$out"; exit 1; }
case "$out" in
  *"System uptime"*) exit 0 ;;
esac
echo "$out"
exit 1

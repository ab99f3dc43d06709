#!/bin/sh
# The asterisk container's health check: Asterisk answers on its control socket and has
# fully booted (its SIP transports and dialplan loaded). `asterisk -rx` exits 0 even for a
# command it does not know, so its exit status alone proves little beyond the socket; and
# `core show uptime` answers before the boot is complete, when a call can still go unheard.
out="$(asterisk -rx 'core waitfullybooted' 2>&1)" || { echo "$out"; exit 1; }
case "$out" in
  *"fully booted"*) exit 0 ;;
esac
echo "$out"
exit 1

#!/bin/sh
# Hostile guest (e): reboots as soon as it has started, every boot: a reboot loop.
[ "$1" = start ] || exit 0
echo "hostile: rebooting" > /dev/console
reboot -f

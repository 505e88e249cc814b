#!/bin/sh
# Hostile guest (b): floods the console with long lines from its start until power-off.
[ "$1" = start ] || exit 0
line=$(head -c 200 /dev/zero | tr '\0' 'F')
# Its own session, so the system start's end does not end it; the console is opened again
# whenever it is taken away (the getty's hangup of the serial line).
# shellcheck disable=SC2016 # $1 is the inner shell's
setsid sh -c 'while :; do yes "flood $1" > /dev/console; done' flood "$line" < /dev/null > /dev/null 2>&1 &

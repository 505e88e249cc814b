#!/bin/sh
# Hostile guest (c): after firstboot has its password, opens and holds many connections to
# the metadata service, and sends slow, huge and malformed requests, in the background.
md=169.254.169.254
case "$1" in
  start)
    # Its own session: the system start's end (a hangup to its process group) does not
    # end it.
    setsid "$0" attack > /dev/null 2>&1 &
    ;;
  attack)
    # Slow: one byte every few seconds.
    (for c in G E T ' ' / x; do printf %s "$c"; sleep 4; done) | nc $md 80 &
    # Huge: 20 MB without a newline, and a path of 7000 characters.
    head -c 20000000 /dev/zero | tr '\0' 'H' | nc $md 80 &
    path=$(head -c 7000 /dev/zero | tr '\0' 'p')
    printf 'GET /%s HTTP/1.0\r\n\r\n' "$path" | nc $md 80 &
    # Malformed.
    printf '\001\002\377 garbage\r\n\r\n' | nc $md 80 &
    printf 'GET\r\n\r\n' | nc $md 80 &
    i=0
    while [ $i -lt 60 ]; do
      # Held: a request that never ends.
      (printf 'GET /latest/meta-data/'; sleep 3600) | nc $md 80 &
      i=$((i + 1))
    done
    echo "hostile: metadata connections opened" > /dev/console
    wait
    ;;
esac

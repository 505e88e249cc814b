#!/bin/sh
# Hostile guest (a): one console line that matches a failure pattern (so it reaches every
# view's evidence) and carries what a terminal, a browser or an XML parser must never get
# from a guest: a window title (OSC 0), a clipboard write (OSC 52), a link (OSC 8), a
# cursor report request (CSI 6n), `</pre><script>`, `]]>`, NUL, C1 controls (raw and as
# UTF-8), invalid UTF-8, then a megabyte of text before the newline.
[ "$1" = start ] || exit 0
{
  printf 'Kernel panic - not syncing: hostile '
  printf '\033]0;OWNED-TITLE\007\033]52;c;T1dORUQtQ0xJUAo=\007'
  printf '\033]8;;http://owned.invalid/\033\\OWNED-LINK\033]8;;\033\\\033[6n'
  printf '</pre><script>alert("OWNED")</script>]]><![CDATA[ & \000 \233 \302\233 \377\376 '
  head -c 1048576 /dev/zero | tr '\0' 'A'
  printf '\n'
} > /dev/console

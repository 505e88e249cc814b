#!/bin/sh
# imgtest guest probe: run once over SSH (`sh -s`), prints one JSON object with the
# facts imgtest judges at runtime. POSIX sh; works under busybox, dash and bash.
# Values are stripped of characters that would need JSON escaping.

q() { printf '"%s"' "$(printf '%s' "$1" | tr -d '"\\\000-\037')"; }

kernel=$(uname -r 2>/dev/null)
machine_id=$(cat /etc/machine-id 2>/dev/null)
host=$(cat /proc/sys/kernel/hostname 2>/dev/null)

fb=""
for p in /usr/sbin/firstboot /sbin/firstboot firstboot; do
    if [ -x "$p" ] || command -v "$p" >/dev/null 2>&1; then
        fb=$("$p" status 2>/dev/null)
        break
    fi
done
state=$(printf '%s\n' "$fb" | sed -n 's/^state=//p' | head -n 1)
hook=$(printf '%s\n' "$fb" | sed -n 's/^hook=//p' | head -n 1)

keys=""
for f in /etc/ssh/ssh_host_*_key /etc/dropbear/dropbear_*_host_key; do
    [ -f "$f" ] || continue
    h=$(sha256sum "$f" | cut -d ' ' -f 1)
    keys="$keys${keys:+,}{\"path\":$(q "$f"),\"sha256\":$(q "$h")}"
done

accounts=""
if [ -r /etc/shadow ]; then
    while IFS=: read -r name hash rest; do
        case "$hash" in
            '!'* | '*'*) ;;
            '') accounts="$accounts${accounts:+,}$(q "$name (empty password)")" ;;
            *) accounts="$accounts${accounts:+,}$(q "$name")" ;;
        esac
    done </etc/shadow
fi

printf '{"kernel":%s,"machine_id":%s,"hostname":%s,"host_keys":[%s],"firstboot_state":%s,"firstboot_hook":%s,"password_accounts":[%s]}\n' \
    "$(q "$kernel")" "$(q "$machine_id")" "$(q "$host")" "$keys" "$(q "$state")" "$(q "$hook")" "$accounts"

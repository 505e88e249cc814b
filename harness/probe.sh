#!/bin/sh
# imgtest guest probe: run once over SSH (`sh -s`), prints one JSON object with the
# facts imgtest judges at runtime. POSIX sh; works under busybox, dash and bash.
# Values are stripped of characters that would need JSON escaping.
# imgtest may set HASH_PATHS (one path per line) before this script: files whose SHA-256
# it wants, to tell whether this boot replaced the image's copy.

q() { printf '"%s"' "$(printf '%s' "$1" | tr -d '"\\\000-\037')"; }
# add VAR ITEM: append ITEM to the comma-separated list in VAR.
add() { eval "$1=\"\${$1}\${$1:+,}\$2\""; }

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

hash_of() { if [ -r "$1" ]; then sha256sum "$1" | cut -d ' ' -f 1; fi; }

keys=""
for f in /etc/ssh/ssh_host_*_key /etc/dropbear/dropbear_*_host_key; do
    [ -f "$f" ] || continue
    add keys "{\"path\":$(q "$f"),\"sha256\":$(q "$(hash_of "$f")")}"
done

accounts=""
if [ -r /etc/shadow ]; then
    while IFS=: read -r name hash rest; do
        case "$hash" in
            '!'* | '*'*) ;;
            '') add accounts "$(q "$name (empty password)")" ;;
            *) add accounts "$(q "$name")" ;;
        esac
    done </etc/shadow
fi

# Accounts with a login shell, and the SSH public keys each accepts.
logins="" akeys="" seen=""
sshd_cfg=$( (sshd -T || /usr/sbin/sshd -T) 2>/dev/null)
akfiles=$(printf '%s\n' "$sshd_cfg" | sed -n 's/^authorizedkeysfile //p')
[ -n "$akfiles" ] || akfiles=".ssh/authorized_keys .ssh/authorized_keys2"
while IFS=: read -r name _ uid _ _ home shell; do
    case "$shell" in '' | */nologin | */false | */sync | */halt | */shutdown) continue ;; esac
    add logins "$(q "$name")"
    for pat in $akfiles .ssh/authorized_keys .ssh/authorized_keys2; do
        f=$(printf '%s' "$pat" | sed -e "s|%h|$home|g" -e "s|%u|$name|g" -e "s|%U|$uid|g" -e 's|%%|%|g')
        case "$f" in /*) ;; *) f="$home/$f" ;; esac
        [ -f "$f" ] || continue
        case " $seen " in *" $f "*) continue ;; esac
        seen="$seen $f"
        # shellcheck disable=SC2094 # add writes a variable, not "$f"
        while read -r line || [ -n "$line" ]; do
            case "$line" in '' | '#'*) continue ;; esac
            key=$(printf '%s\n' "$line" | awk '{ for (i = 1; i < NF; i++) if ($i ~ /^(ssh-|ecdsa-|sk-)/) { print $i " " $(i + 1); exit } }')
            if [ -n "$key" ]; then
                add akeys "{\"user\":$(q "$name"),\"file\":$(q "$f"),\"key\":$(q "$key")}"
            fi
        done <"$f"
    done
done </etc/passwd

# sshd's effective settings that decide who may log in.
sshd=""
for k in permitemptypasswords passwordauthentication permitrootlogin pubkeyauthentication \
    trustedusercakeys hostbasedauthentication ignorerhosts authorizedkeyscommand authorizedkeysfile; do
    v=$(printf '%s\n' "$sshd_cfg" | sed -n "s/^$k //p" | head -n 1)
    [ -n "$v" ] && add sshd "$(q "$k"):$(q "$v")"
done
dropbear=""
for d in /proc/[0-9]*; do
    # `read` is built in: only dropbear's own command line costs a process.
    read -r comm 2>/dev/null <"$d/comm" || continue
    case "$comm" in dropbear*) ;; *) continue ;; esac
    line=$( (tr '\000' ' ' <"$d/cmdline") 2>/dev/null)
    [ -n "$line" ] && add dropbear "$(q "$line")"
done

# UEFI and Secure Boot as the guest sees them: the SecureBoot EFI variable (efivarfs is
# mounted if the init system did not), else mokutil, else the kernel's boot message.
efi=false sb=null sb_source=""
if [ -d /sys/firmware/efi ]; then
    efi=true
    vars=/sys/firmware/efi/efivars
    if [ -z "$(ls "$vars" 2>/dev/null)" ]; then
        modprobe efivarfs 2>/dev/null
        mount -t efivarfs efivarfs "$vars" 2>/dev/null
    fi
    var="$vars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
    if [ -r "$var" ]; then
        # 4 bytes of attributes, then the value.
        case $(dd if="$var" bs=1 skip=4 count=1 2>/dev/null | od -An -tu1 | tr -d ' \n') in
            1) sb=true ;;
            0) sb=false ;;
        esac
        sb_source="SecureBoot EFI variable"
    elif command -v mokutil >/dev/null 2>&1; then
        case $(mokutil --sb-state 2>/dev/null) in
            *enabled*) sb=true ;;
            *disabled*) sb=false ;;
        esac
        sb_source="mokutil --sb-state"
    else
        case $(dmesg 2>/dev/null | grep 'secureboot: Secure boot') in
            *enabled*) sb=true ;;
            *disabled*) sb=false ;;
        esac
        sb_source="the kernel log"
    fi
fi

files=""
while IFS= read -r f; do
    [ -n "$f" ] && add files "{\"path\":$(q "$f"),\"sha256\":$(q "$(hash_of "$f")")}"
done <<PATHS
${HASH_PATHS:-}
PATHS

printf '{"kernel":%s,"machine_id":%s,"hostname":%s,"host_keys":[%s],"firstboot_state":%s,"firstboot_hook":%s,"password_accounts":[%s],"login_accounts":[%s],"sshd":{%s},"dropbear":[%s],"authorized_keys":[%s],"files":[%s],"secure_boot":{"efi":%s,"enabled":%s,"source":%s}}\n' \
    "$(q "$kernel")" "$(q "$machine_id")" "$(q "$host")" "$keys" "$(q "$state")" "$(q "$hook")" "$accounts" \
    "$logins" "$sshd" "$dropbear" "$akeys" "$files" "$efi" "$sb" "$(q "$sb_source")"

#!/bin/sh
# imgtest guest probe: run once over SSH (`sh -s`), prints one JSON object with the
# facts imgtest judges at runtime. POSIX sh; works under busybox, dash and bash.
# Values are stripped of characters that would need JSON escaping.
# imgtest sets HOST_KEY_GLOBS (one shell pattern per line) before this script: where SSH
# host keys live. It may set HASH_PATHS (one path per line): files whose SHA-256 it wants,
# to tell whether this boot replaced the image's copy.
#
# It runs on the verdict's critical path, and an emulated guest pays milliseconds for
# every process: values are read with `read` and quoted without a subshell, and a process
# is started only for what the shell cannot do (firstboot's status, sshd -T, a hash).

# qv VALUE: Q becomes VALUE as a JSON string; `tr` only when there is something to strip.
qv() {
    case "$1" in
        *[\"\\]* | *[![:print:]]*) Q="\"$(printf '%s' "$1" | tr -d '"\\\000-\037')\"" ;;
        *) Q="\"$1\"" ;;
    esac
}
# add VAR ITEM: append ITEM to the comma-separated list in VAR.
add() { eval "$1=\"\${$1}\${$1:+,}\$2\""; }
# first VAR VALUE: VAR becomes VALUE unless it was already set.
first() { eval "[ -n \"\${$1+x}\" ] || $1=\$2"; }
# hash_of FILE: H becomes FILE's SHA-256, empty when it cannot be read.
hash_of() {
    H=""
    [ -r "$1" ] && H=$(sha256sum <"$1" 2>/dev/null)
    H=${H%% *}
}

kernel="" machine_id="" host=""
read -r kernel 2>/dev/null </proc/sys/kernel/osrelease
read -r machine_id 2>/dev/null </etc/machine-id
read -r host 2>/dev/null </proc/sys/kernel/hostname

fb=""
for p in /usr/sbin/firstboot /sbin/firstboot firstboot; do
    if [ -x "$p" ] || command -v "$p" >/dev/null 2>&1; then
        fb=$("$p" status 2>/dev/null)
        break
    fi
done
unset state hook
while IFS= read -r line; do
    case "$line" in
        state=*) first state "${line#state=}" ;;
        hook=*) first hook "${line#hook=}" ;;
    esac
done <<FB
$fb
FB

keys=""
# shellcheck disable=SC2086 # each line a pattern, expanded here
for f in ${HOST_KEY_GLOBS:-}; do
    [ -f "$f" ] || continue
    qv "$f"
    p=$Q
    hash_of "$f"
    qv "$H"
    add keys "{\"path\":$p,\"sha256\":$Q}"
done

accounts=""
if [ -r /etc/shadow ]; then
    while IFS=: read -r name hash rest; do
        case "$hash" in
            '!'* | '*'*) ;;
            '') qv "$name (empty password)" && add accounts "$Q" ;;
            *) qv "$name" && add accounts "$Q" ;;
        esac
    done </etc/shadow
fi

# sshd's effective settings: the first value of each setting that decides who may log in,
# and every authorizedkeysfile pattern.
sshd_cfg=""
for s in sshd /usr/sbin/sshd; do
    command -v "$s" >/dev/null 2>&1 || continue
    sshd_cfg=$("$s" -T 2>/dev/null) && break
done
settings=" permitemptypasswords passwordauthentication permitrootlogin pubkeyauthentication trustedusercakeys hostbasedauthentication ignorerhosts authorizedkeyscommand authorizedkeysfile "
akfiles=""
while IFS= read -r line; do
    case "$line" in *" "*) ;; *) continue ;; esac
    k=${line%% *} v=${line#* }
    case "$settings" in *" $k "*) first "set_$k" "$v" ;; esac
    [ "$k" = authorizedkeysfile ] && akfiles="$akfiles $v"
done <<SSHD
$sshd_cfg
SSHD
sshd=""
for k in $settings; do
    eval "v=\${set_$k-}"
    [ -n "$v" ] && qv "$k" && setting=$Q && qv "$v" && add sshd "$setting:$Q"
done
[ -n "$akfiles" ] || akfiles=".ssh/authorized_keys .ssh/authorized_keys2"

# expand PATTERN: F becomes PATTERN with sshd's %h, %u, %U and %% for this user.
expand() {
    rest=$1 F=""
    while :; do
        case "$rest" in *%*) ;; *) F=$F$rest && return ;; esac
        F=$F${rest%%\%*} rest=${rest#*\%}
        case "$rest" in
            h*) F=$F$home ;;
            u*) F=$F$name ;;
            U*) F=$F$uid ;;
            %*) F=$F% ;;
            *) F=$F% && continue ;;
        esac
        rest=${rest#?}
    done
}

# Accounts with a login shell, and the SSH public keys each accepts: the key is the first
# field that names a key type, and the field after it.
logins="" akeys="" seen=""
set -f
while IFS=: read -r name _ uid _ _ home shell; do
    case "$shell" in '' | */nologin | */false | */sync | */halt | */shutdown) continue ;; esac
    qv "$name" && user=$Q && add logins "$user"
    for pat in $akfiles .ssh/authorized_keys .ssh/authorized_keys2; do
        expand "$pat"
        case "$F" in /*) f=$F ;; *) f="$home/$F" ;; esac
        [ -f "$f" ] || continue
        case " $seen " in *" $f "*) continue ;; esac
        seen="$seen $f"
        qv "$f" && file=$Q
        # shellcheck disable=SC2094 # add writes a variable, not "$f"
        while read -r line || [ -n "$line" ]; do
            case "$line" in '' | '#'*) continue ;; esac
            # shellcheck disable=SC2086 # split into fields; globbing is off
            set -- $line
            while [ $# -gt 1 ]; do
                case "$1" in
                    ssh-* | ecdsa-* | sk-*)
                        qv "$1 $2" && add akeys "{\"user\":$user,\"file\":$file,\"key\":$Q}"
                        break
                        ;;
                esac
                shift
            done
        done <"$f"
    done
done </etc/passwd
set +f

dropbear=""
for d in /proc/[0-9]*; do
    # `read` is built in: only dropbear's own command line costs a process.
    read -r comm 2>/dev/null <"$d/comm" || continue
    case "$comm" in dropbear*) ;; *) continue ;; esac
    line=$(tr '\000' ' ' 2>/dev/null <"$d/cmdline")
    [ -n "$line" ] && qv "$line" && add dropbear "$Q"
done

# UEFI and Secure Boot as the guest sees them: the SecureBoot EFI variable (efivarfs is
# mounted if the init system did not), else mokutil, else the kernel's boot message.
efi=false sb=null sb_source=""
if [ -d /sys/firmware/efi ]; then
    efi=true
    vars=/sys/firmware/efi/efivars
    set -- "$vars"/*
    if [ ! -e "$1" ]; then
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
    [ -n "$f" ] || continue
    qv "$f"
    p=$Q
    hash_of "$f"
    qv "$H"
    add files "{\"path\":$p,\"sha256\":$Q}"
done <<PATHS
${HASH_PATHS:-}
PATHS

qv "$kernel" && q_kernel=$Q
qv "$machine_id" && q_machine_id=$Q
qv "$host" && q_host=$Q
qv "${state-}" && q_state=$Q
qv "${hook-}" && q_hook=$Q
qv "$sb_source" && q_sb_source=$Q
printf '{"kernel":%s,"machine_id":%s,"hostname":%s,"host_keys":[%s],"firstboot_state":%s,"firstboot_hook":%s,"password_accounts":[%s],"login_accounts":[%s],"sshd":{%s},"dropbear":[%s],"authorized_keys":[%s],"files":[%s],"secure_boot":{"efi":%s,"enabled":%s,"source":%s}}\n' \
    "$q_kernel" "$q_machine_id" "$q_host" "$keys" "$q_state" "$q_hook" "$accounts" \
    "$logins" "$sshd" "$dropbear" "$akeys" "$files" "$efi" "$sb" "$q_sb_source"

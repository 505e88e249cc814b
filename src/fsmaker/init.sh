#!/bin/busybox sh
# fsmaker initrd: load the root disk drivers, wait for root=, switch_root into it.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

say() { echo "<2>fsmaker-initrd: $*" > /dev/kmsg; }
fail() {
	say "$*"
	say "block devices: $(cd /sys/class/block 2>/dev/null && echo *)"
	say "powering off"
	sleep 1
	poweroff -f
	exit 1
}

while read -r m; do
	insmod "$m" 2>/dev/null
done < /etc/fsmaker/modules

root=""
init=/sbin/init
mode=ro
fstype=""
flags=""
delay=30
for arg in $(cat /proc/cmdline); do
	case "$arg" in
		root=*) root="${arg#root=}" ;;
		init=*) init="${arg#init=}" ;;
		ro) mode=ro ;;
		rw) mode=rw ;;
		rootfstype=*) fstype="${arg#rootfstype=}" ;;
		rootflags=*) flags=",${arg#rootflags=}" ;;
		fsmaker.rootdelay=*) delay="${arg#fsmaker.rootdelay=}" ;;
	esac
done
[ -n "$root" ] || fail "no root= on the kernel command line"

uptime_s() { read -r up _ < /proc/uptime; echo "${up%%.*}"; }
deadline=$(( $(uptime_s) + delay ))
dev=""
while :; do
	case "$root" in
		/dev/*) [ -b "$root" ] && dev="$root" ;;
		*) dev="$(findfs "$root" 2>/dev/null)" ;;
	esac
	[ -n "$dev" ] && break
	[ "$(uptime_s)" -ge "$deadline" ] && fail "root device $root not found after ${delay}s"
	sleep 0.2
done

if [ -n "$fstype" ]; then
	mount -t "$fstype" -o "$mode$flags" "$dev" /root || fail "cannot mount root device $root ($dev)"
else
	mount -o "$mode$flags" "$dev" /root || fail "cannot mount root device $root ($dev)"
fi
[ -x "/root$init" ] || [ -L "/root$init" ] || fail "no $init on root device $root ($dev)"
say "root $root is $dev, starting $init"
umount /sys
umount /proc
mount --move /dev /root/dev 2>/dev/null || umount /dev
exec switch_root /root "$init"

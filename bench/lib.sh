# Shared by the boot benchmarks (sourced): clocks, and the floor they compare against.
# The caller sets $work (a scratch directory) and kills "$qpid" (if set) on exit.

now() { date +%s.%N; }
calc() { awk "BEGIN { print ($1) }"; }
# below VALUE MINIMUM: whether VALUE is a new minimum (MINIMUM empty: none yet).
below() { [ -z "$2" ] || [ "$(calc "$1 < $2")" = 1 ]; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# default_kernel FSMAKER: the pinned kernel in fsmaker's cache, fetched if it has none.
default_kernel() {
  if "$1" kernel list | grep -q "^no kernel cached"; then
    "$1" kernel fetch "$(images/fetch-assets.sh --role kernel | head -n 1)" >&2
  fi
}

# floor_accel IMGTEST: sets FLOOR_ACCEL to the accelerator imgtest's default command line
# uses on this host (KVM only where its probe proves KVM works; `imgtest doctor` says
# which), so that the floor boots under the same one.
floor_accel() {
  FLOOR_ACCEL=$("$1" doctor 2>/dev/null | sed -n 's/^accelerator for --accel auto: //p')
  echo "accelerator: ${FLOOR_ACCEL:?imgtest doctor named none} (imgtest's default choice; the floors use it too)" >&2
}

# floor_once IMAGE MEMORY [QEMU OPTION]...: seconds from starting plain QEMU on a qcow2
# overlay of IMAGE until the guest's SSH server sends its banner. QEMU's defaults (1 vCPU)
# with imgtest's RAM, machine, disk bus and restricted network, and a metadata answer
# for every path so first boot does not wait. The extra options add devices (firmware);
# FLOOR_MACHINE and FLOOR_NIC replace the machine (pc) and the NIC's device options.
# FLOOR_ACCEL is the accelerator (see floor_accel; tcg if unset).
floor_once() {
  image=$1 memory=$2
  shift 2
  port=$(free_port)
  qemu-img create -q -f qcow2 -F raw -b "$image" "$work/floor.qcow2"
  start=$(now)
  qemu-system-x86_64 -nodefaults -no-user-config -nographic -serial null -monitor none \
    -machine "${FLOOR_MACHINE:-pc}" -accel "${FLOOR_ACCEL:-tcg}" -m "$memory" \
    -drive file="$work/floor.qcow2",format=qcow2,if=none,id=d0,cache=unsafe \
    -device virtio-blk-pci,drive=d0 \
    -netdev "user,id=n0,restrict=on,net=169.254.0.0/16,host=169.254.0.2,hostfwd=tcp:127.0.0.1:$port-:22,guestfwd=tcp:169.254.169.254:80-cmd:printf 'HTTP/1.0 200 OK\r\nContent-Length: 13\r\n\r\nbenchpassword'" \
    -device "${FLOOR_NIC:-virtio-net-pci,netdev=n0}" "$@" &
  qpid=$!
  # QEMU accepts every connection to the forwarded port at once and the guest may leave
  # it hanging until its network is up: a new connection every 100 ms, all polled, so the
  # banner is seen within 100 ms of the server listening.
  python3 - "$port" <<'PY'
import selectors, socket, sys, time
port = int(sys.argv[1]); deadline = time.time() + 600
sel = selectors.DefaultSelector(); next_open = 0.0
while time.time() < deadline:
    if time.time() >= next_open:
        next_open = time.time() + 0.1
        s = socket.socket(); s.setblocking(False)
        try:
            s.connect_ex(("127.0.0.1", port)); sel.register(s, selectors.EVENT_READ)
        except OSError:
            s.close()
    for key, _ in sel.select(timeout=max(0.0, next_open - time.time())):
        try:
            data = key.fileobj.recv(64)
        except OSError:
            data = b""
        if data.startswith(b"SSH-"):
            sys.exit(0)
        sel.unregister(key.fileobj); key.fileobj.close()
sys.exit(1)
PY
  end=$(now)
  kill "$qpid"; wait "$qpid" 2>/dev/null || true; qpid=""
  rm -f "$work/floor.qcow2"
  calc "$end - $start"
}

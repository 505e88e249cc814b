//! QEMU as imgtest drives it: a pure command builder ([`VmSpec::args`]), accelerator
//! detection ([`accel`]), firmware (SeaBIOS or OVMF, [`firmware`]), qcow2 overlays
//! ([`create_overlay`]), QMP ([`qmp`]) and the process-group guard that makes sure no QEMU
//! outlives imgtest ([`process`]).
//!
//! The builder never touches the system, so its output is unit-tested argument by argument.
//! The guest network is always QEMU user networking with `restrict=on`: the guest only
//! reaches the forwarded SSH port and the metadata relay.

pub mod accel;
pub mod firmware;
pub mod kvm;
pub mod process;
pub mod qmp;

use std::path::{Path, PathBuf};
use std::process::Command;

pub use crate::facts::Accel;
use crate::helper::{self, HelperError};
use crate::named::Named;

crate::named_enum! {
    /// The bus the main disk hangs on.
    #[derive(Default)]
    pub enum DiskBus("disk bus") {
        /// virtio-blk-pci (what most clouds expose).
        #[default]
        Virtio = "virtio",
        /// Emulated IDE.
        Ide = "ide",
        /// virtio-scsi with a scsi-hd.
        Scsi = "scsi",
    }
}

/// Direct kernel boot (`-kernel`/`-initrd`/`-append`), bypassing firmware and bootloader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectKernel {
    /// The kernel image.
    pub kernel: PathBuf,
    /// An optional initrd.
    pub initrd: Option<PathBuf>,
    /// The kernel command line.
    pub append: String,
}

/// OVMF as one boot attaches it: the code read-only, a private variable store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uefi {
    /// The firmware code.
    pub code: PathBuf,
    /// This boot's own copy of the variable store (written by the guest).
    pub vars: PathBuf,
    /// The Secure Boot build: needs SMM and a secure pflash.
    pub secure_boot: bool,
}

/// Everything that determines one QEMU invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// The accelerator.
    pub accel: Accel,
    /// Guest RAM in MiB.
    pub memory_mib: u32,
    /// Number of vCPUs.
    pub smp: u32,
    /// OVMF instead of SeaBIOS.
    pub uefi: Option<Uefi>,
    /// The writable main disk (a qcow2 overlay), if any.
    pub disk: Option<PathBuf>,
    /// Further disks (qcow2 overlays) after the main one, in boot order.
    pub extra_disks: Vec<PathBuf>,
    /// The bus of the main disk.
    pub disk_bus: DiskBus,
    /// An ISO attached read-only as a CD-ROM, booted before the disk.
    pub cdrom: Option<PathBuf>,
    /// Direct kernel boot instead of firmware boot.
    pub direct_kernel: Option<DirectKernel>,
    /// Host port on 127.0.0.1 forwarded to the guest's port 22, if any.
    pub ssh_port: Option<u16>,
    /// Shell command QEMU runs per guest connection to 169.254.169.254:80, if any.
    pub metadata_cmd: Option<String>,
    /// Path of the QMP unix socket QEMU listens on, if any.
    pub qmp_socket: Option<PathBuf>,
    /// SMBIOS type 1 (system) serial number, if any: cloud-init's NoCloud seed.
    pub smbios_serial: Option<String>,
}

impl VmSpec {
    /// A spec with no disk, network or QMP: the smallest VM QEMU will start.
    pub fn new(accel: Accel, memory_mib: u32, smp: u32) -> Self {
        VmSpec {
            accel,
            memory_mib,
            smp,
            uefi: None,
            disk: None,
            extra_disks: Vec::new(),
            disk_bus: DiskBus::Virtio,
            cdrom: None,
            direct_kernel: None,
            ssh_port: None,
            metadata_cmd: None,
            qmp_socket: None,
            smbios_serial: None,
        }
    }

    /// The QEMU arguments (without the program name).
    ///
    /// The serial console is QEMU's stdout. `-nographic` makes SeaBIOS and iPXE mirror
    /// their text to the serial port (QEMU passes them `etc/sercon-port`), so firmware
    /// and bootloader phases are visible even for images without a serial console; OVMF
    /// writes its console to the serial port itself. A standard VGA card shows what a
    /// person would see (no window: its screen is read with QMP's `screendump`); the
    /// mirroring stays, since `-nographic` still sets it.
    /// A guest reboot exits QEMU (`-no-reboot`): imgtest judges one boot at a time.
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = [
            "-nodefaults",
            "-no-user-config",
            "-nographic",
            "-serial",
            "stdio",
            "-monitor",
            "none",
            "-no-reboot",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        self.push_firmware(&mut a);
        push(&mut a, "-accel", self.accel.name());
        push(&mut a, "-m", &self.memory_mib.to_string());
        push(&mut a, "-smp", &self.smp.to_string());
        self.push_drives(&mut a);
        if let Some(k) = &self.direct_kernel {
            push(&mut a, "-kernel", &k.kernel.to_string_lossy());
            if let Some(initrd) = &k.initrd {
                push(&mut a, "-initrd", &initrd.to_string_lossy());
            }
            push(&mut a, "-append", &k.append);
        }
        if let Some(serial) = &self.smbios_serial {
            push(
                &mut a,
                "-smbios",
                &format!("type=1,serial={}", escape_opt(serial)),
            );
        }
        push(&mut a, "-netdev", &self.netdev());
        // OVMF would load the NIC's iPXE EFI driver and try network boot options: a
        // platform boots from its disks, so the NIC carries no option ROM under UEFI.
        let nic_rom = if self.uefi.is_some() { ",romfile=" } else { "" };
        push(
            &mut a,
            "-device",
            &format!("virtio-net-pci,netdev=n0{nic_rom}"),
        );
        // Entropy from the host, as clouds give their servers: first-boot key
        // generation need not wait for the guest kernel to gather its own.
        push(&mut a, "-device", "virtio-rng-pci");
        push(&mut a, "-device", "VGA");
        if let Some(sock) = &self.qmp_socket {
            push(
                &mut a,
                "-qmp",
                &format!("unix:{},server=on,wait=off", opt_path(sock)),
            );
        }
        a
    }

    /// The machine and its firmware ([`firmware_args`]).
    fn push_firmware(&self, a: &mut Vec<String>) {
        a.extend(firmware_args(self.uefi.as_ref()));
    }

    /// The CD (boot index 0), the disk on its bus (boot index 1) and the further disks
    /// after it.
    fn push_drives(&self, a: &mut Vec<String>) {
        if let Some(cd) = &self.cdrom {
            push(
                a,
                "-drive",
                &format!(
                    "file={},format=raw,media=cdrom,readonly=on,if=none,id=cd0",
                    opt_path(cd)
                ),
            );
            push(a, "-device", "ide-cd,drive=cd0,bus=ide.1,bootindex=0");
        }
        let disks = self.disk.iter().chain(&self.extra_disks);
        if self.disk.is_some() && self.disk_bus == DiskBus::Scsi {
            push(a, "-device", "virtio-scsi-pci,id=scsi0");
        }
        for (n, disk) in disks.enumerate() {
            push(
                a,
                "-drive",
                &format!(
                    "file={},format=qcow2,if=none,id=d{n},cache=unsafe",
                    opt_path(disk)
                ),
            );
            let boot = n + 1;
            let device = match self.disk_bus {
                DiskBus::Virtio => format!("virtio-blk-pci,drive=d{n},bootindex={boot}"),
                // The CD is ide.1's master: further IDE disks are ide.0's slave, then
                // ide.1's.
                DiskBus::Ide => format!(
                    "ide-hd,drive=d{n},bus=ide.{},unit={},bootindex={boot}",
                    n / 2 % 2,
                    n.div_ceil(2) % 2
                ),
                DiskBus::Scsi => format!("scsi-hd,drive=d{n},bus=scsi0.0,bootindex={boot}"),
            };
            push(a, "-device", &device);
        }
    }

    /// The isolated user network: `restrict=on`, SSH forwarded from 127.0.0.1, the
    /// metadata address answered by the relay command.
    fn netdev(&self) -> String {
        let mut netdev = String::from("user,id=n0,restrict=on,net=169.254.0.0/16,host=169.254.0.2");
        if let Some(port) = self.ssh_port {
            netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{port}-:22"));
        }
        if let Some(cmd) = &self.metadata_cmd {
            netdev.push_str(&format!(
                ",guestfwd=tcp:169.254.169.254:80-cmd:{}",
                escape_opt(cmd)
            ));
        }
        netdev
    }
}

/// The machine and its firmware: `pc` with SeaBIOS; `q35` with OVMF's code and a
/// variable store as pflash, plus SMM and a secure flash for Secure Boot.
pub fn firmware_args(uefi: Option<&Uefi>) -> Vec<String> {
    let mut a = Vec::new();
    let Some(uefi) = uefi else {
        push(&mut a, "-machine", "pc");
        return a;
    };
    if uefi.secure_boot {
        push(&mut a, "-machine", "q35,smm=on");
        push(
            &mut a,
            "-global",
            "driver=cfi.pflash01,property=secure,value=on",
        );
    } else {
        push(&mut a, "-machine", "q35");
    }
    push(
        &mut a,
        "-drive",
        &format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={}",
            opt_path(&uefi.code)
        ),
    );
    push(
        &mut a,
        "-drive",
        &format!("if=pflash,format=raw,unit=1,file={}", opt_path(&uefi.vars)),
    );
    a
}

fn push(a: &mut Vec<String>, flag: &str, value: &str) {
    a.push(flag.to_string());
    a.push(value.to_string());
}

/// QEMU option values separate sub-options with commas; a literal comma is doubled.
fn escape_opt(s: &str) -> String {
    s.replace(',', ",,")
}

fn opt_path(p: &Path) -> String {
    escape_opt(&p.to_string_lossy())
}

/// The `qemu-img create` command for a qcow2 overlay of `base` (format `base_format`).
pub fn overlay_command(base: &Path, base_format: &str, overlay: &Path) -> Command {
    let mut c = Command::new("qemu-img");
    c.args(["create", "-q", "-f", "qcow2", "-F", base_format, "-b"])
        .arg(base)
        .arg(overlay);
    c
}

/// The `qemu-img create` command for a blank thin qcow2 disk of `size` bytes.
pub fn blank_disk_command(path: &Path, size: u64) -> Command {
    let mut c = Command::new("qemu-img");
    c.args(["create", "-q", "-f", "qcow2"])
        .arg(path)
        .arg(size.to_string());
    c
}

/// QEMU's own memory beside its guest's, per VM, when sizing what the host can run.
pub const QEMU_OVERHEAD_MIB: u64 = 160;

/// `MemAvailable` of /proc/meminfo, in MiB.
pub fn available_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Whether `vms` VMs of `memory_mib` each (and QEMU's own [`QEMU_OVERHEAD_MIB`]) fit in
/// `available_mib`; if not, why.
pub fn fits_memory(vms: usize, memory_mib: u32, available_mib: u64) -> Result<(), String> {
    let need = (vms as u64).saturating_mul(u64::from(memory_mib) + QEMU_OVERHEAD_MIB);
    if need <= available_mib {
        return Ok(());
    }
    Err(format!(
        "{vms} VM(s) of {memory_mib} MiB need about {need} MiB with QEMU's own, but the host has {available_mib} MiB available"
    ))
}

/// Errors from preparing or running a VM.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// QEMU could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A helper program (`qemu-img`) failed.
    #[error(transparent)]
    Helper(#[from] HelperError),
    /// A QMP exchange failed.
    #[error("QMP: {0}")]
    Qmp(String),
    /// The firmware is missing or its variable store cannot be copied.
    #[error("firmware: {0}")]
    Firmware(String),
}

/// Creates a qcow2 overlay of `base` at `overlay` (readable by its owner alone); the base
/// is never written.
pub fn create_overlay(base: &Path, base_format: &str, overlay: &Path) -> Result<(), VmError> {
    private(overlay)?;
    helper::run(
        &mut overlay_command(base, base_format, overlay),
        "qemu-utils",
    )?;
    Ok(())
}

/// Creates a blank thin qcow2 disk of `size` bytes at `path` (readable by its owner
/// alone).
pub fn create_blank_disk(path: &Path, size: u64) -> Result<(), VmError> {
    private(path)?;
    helper::run(&mut blank_disk_command(path, size), "qemu-utils")?;
    Ok(())
}

/// Creates `path` as an empty file only its owner may read, for `qemu-img create` to fill:
/// it keeps the mode of a file it overwrites.
fn private(path: &Path) -> Result<(), VmError> {
    crate::scratch::private_file(path)
        .map(drop)
        .map_err(|source| VmError::Spawn {
            program: "qemu-img".into(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(spec: &VmSpec) -> String {
        spec.args().join(" ")
    }

    #[test]
    fn minimal_spec_has_isolated_network_and_serial_on_stdio() {
        let s = joined(&VmSpec::new(Accel::Tcg, 256, 2));
        assert!(s.contains("-accel tcg -m 256 -smp 2"), "{s}");
        assert!(s.contains("-nographic -serial stdio -monitor none"), "{s}");
        assert!(
            s.contains("-netdev user,id=n0,restrict=on,net=169.254.0.0/16,host=169.254.0.2 "),
            "{s}"
        );
        assert!(!s.contains("hostfwd"));
        assert!(!s.contains("-drive"));
        assert!(s.contains("-device virtio-rng-pci"), "{s}");
        // A screen to take screenshots of, beside the serial console.
        assert!(s.contains("-device VGA") && s.contains("-nographic"), "{s}");
    }

    #[test]
    fn disk_bus_variants() {
        let mut spec = VmSpec::new(Accel::Kvm, 384, 1);
        spec.disk = Some("/t/o.qcow2".into());
        let s = joined(&spec);
        assert!(s.contains("-drive file=/t/o.qcow2,format=qcow2,if=none,id=d0,cache=unsafe"));
        assert!(s.contains("-device virtio-blk-pci,drive=d0,bootindex=1"));
        spec.disk_bus = DiskBus::Ide;
        assert!(joined(&spec).contains("-device ide-hd,drive=d0,bus=ide.0,unit=0,bootindex=1"));
        spec.disk_bus = DiskBus::Scsi;
        let s = joined(&spec);
        assert!(s.contains("-device virtio-scsi-pci,id=scsi0 -drive file=/t/o.qcow2"));
        assert!(s.contains("-device scsi-hd,drive=d0,bus=scsi0.0,bootindex=1"));
        assert!(s.contains("-accel kvm"));
    }

    #[test]
    fn uefi_boots_ovmf_from_pflash_with_a_private_store() {
        let mut spec = VmSpec::new(Accel::Tcg, 256, 1);
        assert!(joined(&spec).contains("-machine pc "));
        assert!(joined(&spec).contains("-device virtio-net-pci,netdev=n0 "));
        spec.uefi = Some(Uefi {
            code: "/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
            vars: "/t/boot0-vars.fd".into(),
            secure_boot: false,
        });
        let s = joined(&spec);
        assert!(s.contains("-machine q35 "), "{s}");
        assert!(s.contains(
            "-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
             -drive if=pflash,format=raw,unit=1,file=/t/boot0-vars.fd"
        ));
        assert!(
            s.contains("-device virtio-net-pci,netdev=n0,romfile= "),
            "{s}"
        );
        assert!(!s.contains("smm"));
        spec.uefi.as_mut().unwrap().secure_boot = true;
        let s = joined(&spec);
        assert!(
            s.contains("-machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on")
        );
    }

    #[test]
    fn further_disks_follow_the_main_one_in_boot_order() {
        let mut spec = VmSpec::new(Accel::Tcg, 256, 1);
        spec.cdrom = Some("/img/x.iso".into());
        spec.disk = Some("/t/a.qcow2".into());
        spec.extra_disks = vec!["/t/b.qcow2".into(), "/t/c.qcow2".into()];
        let s = joined(&spec);
        for (n, f) in ["a", "b", "c"].iter().enumerate() {
            assert!(s.contains(&format!(
                "-drive file=/t/{f}.qcow2,format=qcow2,if=none,id=d{n},cache=unsafe \
                 -device virtio-blk-pci,drive=d{n},bootindex={}",
                n + 1
            )));
        }
        spec.disk_bus = DiskBus::Ide;
        let s = joined(&spec);
        assert!(
            s.contains("ide-hd,drive=d0,bus=ide.0,unit=0,bootindex=1"),
            "{s}"
        );
        assert!(
            s.contains("ide-hd,drive=d1,bus=ide.0,unit=1,bootindex=2"),
            "{s}"
        );
        assert!(
            s.contains("ide-hd,drive=d2,bus=ide.1,unit=1,bootindex=3"),
            "{s}"
        );
        spec.disk_bus = DiskBus::Scsi;
        let s = joined(&spec);
        assert_eq!(s.matches("virtio-scsi-pci").count(), 1);
        assert!(s.contains("scsi-hd,drive=d2,bus=scsi0.0,bootindex=3"));
    }

    #[test]
    fn cdrom_boots_before_disk() {
        let mut spec = VmSpec::new(Accel::Tcg, 256, 1);
        spec.cdrom = Some("/img/x.iso".into());
        spec.disk = Some("/t/blank.qcow2".into());
        let a = spec.args();
        let cd = a.iter().position(|x| x.contains("bootindex=0")).unwrap();
        let hd = a.iter().position(|x| x.contains("bootindex=1")).unwrap();
        assert!(a[cd].starts_with("ide-cd,drive=cd0"));
        assert!(
            a.iter()
                .any(|x| x == "file=/img/x.iso,format=raw,media=cdrom,readonly=on,if=none,id=cd0")
        );
        assert!(cd < hd);
    }

    #[test]
    fn forwards_ssh_and_metadata_with_commas_escaped() {
        let mut spec = VmSpec::new(Accel::Tcg, 256, 1);
        spec.ssh_port = Some(40022);
        spec.metadata_cmd = Some("'/a,b/imgtest' __relay 127.0.0.1:5 tok".into());
        spec.qmp_socket = Some("/t/qmp.sock".into());
        let a = spec.args();
        let net = &a[a.iter().position(|x| x == "-netdev").unwrap() + 1];
        assert!(net.contains(",hostfwd=tcp:127.0.0.1:40022-:22,"), "{net}");
        assert!(
            net.ends_with(
                ",guestfwd=tcp:169.254.169.254:80-cmd:'/a,,b/imgtest' __relay 127.0.0.1:5 tok"
            ),
            "{net}"
        );
        assert!(joined(&spec).contains("-qmp unix:/t/qmp.sock,server=on,wait=off"));
    }

    #[test]
    fn smbios_serial_is_one_argument_with_semicolons_kept_and_commas_doubled() {
        let mut spec = VmSpec::new(Accel::Tcg, 256, 1);
        assert!(!spec.args().contains(&"-smbios".to_string()));
        spec.smbios_serial = Some(crate::cloudinit::NOCLOUD_SERIAL.into());
        let a = spec.args();
        let i = a.iter().position(|x| x == "-smbios").unwrap();
        assert_eq!(
            a[i + 1],
            "type=1,serial=ds=nocloud-net;s=http://169.254.169.254/"
        );
        spec.smbios_serial = Some("a,b".into());
        assert!(spec.args().contains(&"type=1,serial=a,,b".to_string()));
    }

    #[test]
    fn direct_kernel_boot() {
        let mut spec = VmSpec::new(Accel::Tcg, 256, 1);
        spec.direct_kernel = Some(DirectKernel {
            kernel: "/k/vmlinuz".into(),
            initrd: None,
            append: "console=ttyS0 panic=-1".into(),
        });
        let a = spec.args();
        let k = a.iter().position(|x| x == "-kernel").unwrap();
        assert_eq!(a[k + 1], "/k/vmlinuz");
        assert_eq!(a[k + 2], "-append");
        assert_eq!(a[k + 3], "console=ttyS0 panic=-1");
        assert!(!a.contains(&"-initrd".to_string()));
    }

    #[test]
    fn overlay_command_names_backing_format_and_absolute_base() {
        let c = overlay_command(Path::new("/imgs/a.img"), "raw", Path::new("/t/o.qcow2"));
        let args: Vec<_> = c
            .get_args()
            .map(|x| x.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                "raw",
                "-b",
                "/imgs/a.img",
                "/t/o.qcow2"
            ]
        );
    }

    #[test]
    fn vms_must_fit_the_memory_the_host_has() {
        assert!(fits_memory(2, 384, 1088).is_ok());
        let e = fits_memory(1000, 384, 24_000).unwrap_err();
        assert_eq!(
            e,
            "1000 VM(s) of 384 MiB need about 544000 MiB with QEMU's own, but the host has 24000 MiB available"
        );
        assert!(fits_memory(usize::MAX, u32::MAX, u64::MAX - 1).is_err());
    }

    #[test]
    fn disk_bus_parses() {
        assert_eq!("scsi".parse::<DiskBus>().unwrap(), DiskBus::Scsi);
        assert!("sata".parse::<DiskBus>().is_err());
    }
}

//! The KVM proof: a vCPU of a fresh KVM virtual machine runs a few hundred bytes of
//! built-in code that does what every kernel does first — real mode, protected mode,
//! long mode with paging, then a counted loop — and reports each stage with an `out` to a
//! port, then `hlt`. No kernel, no image, no QEMU: only `/dev/kvm`.
//!
//! Hosts fail it in three ways, each seen on real machines: `/dev/kvm` missing or not
//! openable; KVM refusing to make a VM or vCPU; and a vCPU that runs, but so slowly that
//! a guest would be better off under TCG (nested virtualisation without hardware
//! support: on one such host the loop below ran at 1.4 µs a step, ~3 000× slower than
//! hardware, and a Linux kernel took minutes to print its first line). The loop makes the
//! last visible: [`LOOP_STEPS`] steps take a few milliseconds on working KVM.
//!
//! [`run`] is the proof itself. It may never return from `KVM_RUN` on a broken host, so
//! callers run it in a child process they can kill (`imgtest __kvm-probe`, see
//! [`super::accel`]), which reports its stages on stdout as [`Stage`] lines.

use std::time::{Duration, Instant};

use kvm_ioctls::{Kvm, VcpuExit};

/// The port the guest code writes its stages to.
const PORT: u16 = 0x3f8;

/// Steps of the guest's counted loop (`dec ebx; jnz`).
pub const LOOP_STEPS: u32 = 10_000_000;

/// Where the guest code is loaded and starts (real mode, CS=0).
const CODE_AT: u64 = 0x8000;

/// Guest memory: page tables at 0x1000-0x3fff, the code at [`CODE_AT`].
const MEMORY: usize = 0x10000;

/// The guest code, assembled from (GNU as, `.code16` at 0x8000, page tables prepared by
/// the host at 0x1000):
///
/// ```text
///     cli; mov $0x3f8,%dx; mov $'R',%al; out %al,%dx      # real mode
///     lgdtl gdt_desc; mov %cr0,%eax; or $1,%eax; mov %eax,%cr0
///     ljmpl $0x08,$start32
/// start32: (.code32)
///     mov $0x10,%ax; mov %ax,%ds; mov %ax,%ss
///     mov $0x3f8,%dx; mov $'P',%al; out %al,%dx           # protected mode
///     mov %cr4,%eax; or $0x20,%eax; mov %eax,%cr4          # PAE
///     mov $0x1000,%eax; mov %eax,%cr3
///     mov $0xc0000080,%ecx; rdmsr; or $0x100,%eax; wrmsr  # EFER.LME
///     mov %cr0,%eax; or $0x80000000,%eax; mov %eax,%cr0    # paging: long mode
///     ljmpl $0x18,$start64
/// start64: (.code64)
///     mov $0x3f8,%dx; mov $'L',%al; out %al,%dx           # long mode
/// 1:  dec %ebx; jnz 1b                                     # EBX = LOOP_STEPS
///     mov $'C',%al; out %al,%dx; hlt                       # loop done
/// gdt: null, 32-bit code 0x00cf9a000000ffff, data 0x00cf92000000ffff,
///      64-bit code 0x00af9a000000ffff
/// ```
const CODE: &[u8] = &[
    0xfa, 0xba, 0xf8, 0x03, 0xb0, 0x52, 0xee, 0x66, 0x0f, 0x01, 0x16, 0x90, 0x80, 0x0f, 0x20, 0xc0,
    0x66, 0x83, 0xc8, 0x01, 0x0f, 0x22, 0xc0, 0x66, 0xea, 0x1f, 0x80, 0x00, 0x00, 0x08, 0x00, 0x66,
    0xb8, 0x10, 0x00, 0x8e, 0xd8, 0x8e, 0xd0, 0x66, 0xba, 0xf8, 0x03, 0xb0, 0x50, 0xee, 0x0f, 0x20,
    0xe0, 0x83, 0xc8, 0x20, 0x0f, 0x22, 0xe0, 0xb8, 0x00, 0x10, 0x00, 0x00, 0x0f, 0x22, 0xd8, 0xb9,
    0x80, 0x00, 0x00, 0xc0, 0x0f, 0x32, 0x0d, 0x00, 0x01, 0x00, 0x00, 0x0f, 0x30, 0x0f, 0x20, 0xc0,
    0x0d, 0x00, 0x00, 0x00, 0x80, 0x0f, 0x22, 0xc0, 0xea, 0x5f, 0x80, 0x00, 0x00, 0x18, 0x00, 0x66,
    0xba, 0xf8, 0x03, 0xb0, 0x4c, 0xee, 0xff, 0xcb, 0x75, 0xfc, 0xb0, 0x43, 0xee, 0xf4, 0x66, 0x90,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xcf, 0x00,
    0xff, 0xff, 0x00, 0x00, 0x00, 0x92, 0xcf, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xaf, 0x00,
    0x1f, 0x00, 0x70, 0x80, 0x00, 0x00,
];

crate::named_enum! {
    /// How far the guest code got, in order.
    pub enum Stage("probe stage") {
        /// Real mode: the first instructions ran.
        Real = "real-mode",
        /// Protected mode: a GDT loaded, CR0.PE set.
        Protected = "protected-mode",
        /// Long mode: PAE, page tables, EFER.LME and paging.
        Long = "long-mode",
        /// The counted loop finished.
        Loop = "loop",
    }
}

impl Stage {
    /// The stage the guest reports with `value` on the port.
    fn from_port(value: u8) -> Option<Stage> {
        match value {
            b'R' => Some(Stage::Real),
            b'P' => Some(Stage::Protected),
            b'L' => Some(Stage::Long),
            b'C' => Some(Stage::Loop),
            _ => None,
        }
    }
}

/// Why the proof did not complete.
#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    /// An ioctl KVM refused (or `/dev/kvm` did not open).
    #[error("{step}: {source}")]
    Refused {
        /// What was being done.
        step: &'static str,
        /// What KVM said.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// The vCPU stopped for another reason than the code's next port write or its `hlt`.
    #[error("the vCPU stopped with {exit} after {after}")]
    Exit {
        /// The exit, as KVM named it.
        exit: String,
        /// The last stage reached (none: not even real mode).
        after: String,
    },
    /// Guest memory could not be mapped.
    #[error("guest memory: {0}")]
    Memory(std::io::Error),
}

fn refused(step: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> KvmError {
    move |source| KvmError::Refused { step, source }
}

/// Anonymous memory for the guest, unmapped on drop.
struct GuestMemory(*mut u8);

impl GuestMemory {
    fn new() -> Result<GuestMemory, KvmError> {
        // SAFETY: a fresh anonymous mapping; nothing else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MEMORY,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_ANONYMOUS | libc::MAP_SHARED | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(KvmError::Memory(std::io::Error::last_os_error()));
        }
        Ok(GuestMemory(p.cast()))
    }

    /// Copies `bytes` to guest-physical `at` (within [`MEMORY`]).
    fn write(&mut self, at: usize, bytes: &[u8]) {
        assert!(at + bytes.len() <= MEMORY, "guest write out of bounds");
        // SAFETY: within the mapping (checked above), which only this value owns.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.0.add(at), bytes.len()) }
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.0.cast(), MEMORY) };
    }
}

/// Runs the proof, telling `stage` each stage as the guest reaches it; returns how long
/// the guest ran from its first instruction to its `hlt`. May never return where a vCPU
/// never runs: see the module note.
pub fn run(stage: &mut dyn FnMut(Stage)) -> Result<Duration, KvmError> {
    let kvm = Kvm::new().map_err(refused("open /dev/kvm"))?;
    let vm = kvm.create_vm().map_err(refused("KVM_CREATE_VM"))?;
    let mut mem = GuestMemory::new()?;
    // Identity-map the first 2 MiB: PML4 -> PDPT -> PD with one large page.
    mem.write(0x1000, &(0x2000u64 | 3).to_le_bytes());
    mem.write(0x2000, &(0x3000u64 | 3).to_le_bytes());
    mem.write(0x3000, &0x83u64.to_le_bytes());
    mem.write(CODE_AT as usize, CODE);
    let region = kvm_bindings::kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: 0,
        memory_size: MEMORY as u64,
        userspace_addr: mem.0 as u64,
        flags: 0,
    };
    // SAFETY: the region is the live mapping `mem`, which outlives the VM (dropped after).
    unsafe { vm.set_user_memory_region(region) }.map_err(refused("KVM_SET_USER_MEMORY_REGION"))?;
    let mut vcpu = vm.create_vcpu(0).map_err(refused("KVM_CREATE_VCPU"))?;
    // Without CPUID, the vCPU claims no long mode and EFER.LME faults.
    let cpuid = kvm
        .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
        .map_err(refused("KVM_GET_SUPPORTED_CPUID"))?;
    vcpu.set_cpuid2(&cpuid).map_err(refused("KVM_SET_CPUID2"))?;
    let mut sregs = vcpu.get_sregs().map_err(refused("KVM_GET_SREGS"))?;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs).map_err(refused("KVM_SET_SREGS"))?;
    let mut regs = vcpu.get_regs().map_err(refused("KVM_GET_REGS"))?;
    regs.rip = CODE_AT;
    regs.rflags = 2;
    regs.rbx = u64::from(LOOP_STEPS);
    vcpu.set_regs(&regs).map_err(refused("KVM_SET_REGS"))?;
    let start = Instant::now();
    let mut last: Option<Stage> = None;
    loop {
        let exit = vcpu.run().map_err(refused("KVM_RUN"))?;
        match exit {
            VcpuExit::IoOut(PORT, [value]) if Stage::from_port(*value).is_some() => {
                let s = Stage::from_port(*value).expect("checked in the guard");
                last = Some(s);
                stage(s);
            }
            VcpuExit::Hlt if last == Some(Stage::Loop) => return Ok(start.elapsed()),
            other => {
                return Err(KvmError::Exit {
                    exit: format!("{other:?}"),
                    after: last.map_or("no stage".into(), |s| s.to_string()),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::named::Named;

    /// The stage bytes and the loop count sit where the code expects them: the `out`s of
    /// 'R', 'P', 'L' and 'C', the GDT descriptor's base at the GDT, the far jumps' targets.
    #[test]
    fn the_guest_code_is_laid_out_as_its_source_says() {
        let outs: Vec<u8> = CODE
            .windows(3)
            .filter(|w| w[0] == 0xb0 && w[2] == 0xee)
            .map(|w| w[1])
            .collect();
        assert_eq!(outs, b"RPLC");
        let gdt_desc = CODE.len() - 6;
        let limit = u16::from_le_bytes([CODE[gdt_desc], CODE[gdt_desc + 1]]);
        let base = u32::from_le_bytes(CODE[gdt_desc + 2..].try_into().unwrap());
        assert_eq!(limit, 31, "four descriptors");
        assert_eq!(u64::from(base), CODE_AT + gdt_desc as u64 - 32);
        assert_eq!(
            &CODE[gdt_desc - 8..gdt_desc],
            &0x00af_9a00_0000_ffffu64.to_le_bytes(),
            "the last descriptor is 64-bit code"
        );
        // lgdtl names the descriptor's address.
        assert_eq!(
            u64::from(u16::from_le_bytes([CODE[11], CODE[12]])),
            CODE_AT + gdt_desc as u64
        );
    }

    #[test]
    fn port_values_name_the_stages_in_order() {
        let stages: Vec<Stage> = b"RPLC"
            .iter()
            .filter_map(|v| Stage::from_port(*v))
            .collect();
        assert_eq!(stages, Stage::ALL);
        assert_eq!(Stage::from_port(b'x'), None);
    }
}

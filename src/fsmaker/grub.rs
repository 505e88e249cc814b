//! GRUB installed without `grub-install`. For BIOS (i386-pc) `grub-mkimage` builds the
//! core image, and the boot sector and core image are patched exactly as GRUB's own
//! `grub-bios-setup` (util/setup.c) does when it embeds core.img in the MBR gap or in a
//! GPT disk's BIOS boot partition (the blocklist then points into that partition):
//!
//! * boot.img: BPB (0x03..0x5a) and partition table area (0x1b8..0x1fe) come from the
//!   disk's existing sector 0; the kernel sector (0x5c, u64 LE) is the first sector of
//!   core.img; the boot drive byte (0x64) is 0xff; the drive check jump (0x66) becomes
//!   two NOPs, as setup.c does for hard disks.
//! * diskboot.img (core.img's first sector): blocklists grow downwards from 0x200-12;
//!   old entries are cleared, then one entry {start = first sector + 1,
//!   len = sectors - 1, segment = 0x800 + 0x20} is written, followed by a terminator.
//!
//! Reed-Solomon recovery codes are not added (as `grub-bios-setup --no-rs-codes`).
//!
//! `grub.cfg` is GRUB's script language: every value fsmaker writes into it is quoted as
//! one literal word ([`quote`]), and the kernel command line is split into the arguments
//! GRUB's `linux` command passes on ([`linux_args`]); what GRUB could not pass on
//! unchanged is refused.
//!
//! For UEFI (x86_64-efi) `grub-mkimage` builds `BOOTX64.EFI` with every module it needs
//! built in (the platform's modules are 19 MiB: they are not copied) and the prefix
//! `/EFI/BOOT`: it reads the ESP's `/EFI/BOOT/grub.cfg` ([`esp_config`]), which finds the
//! root filesystem by UUID and loads the same `/boot/grub/grub.cfg` BIOS boots read.
//!
//! Nothing here writes to a disk: the functions return the patched bytes and the build
//! puts them in place.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::BuildError;
use crate::helper;

/// Where grub-setup reads the first-sector fields (grub/i386/pc/boot.h).
const BPB_START: usize = 0x3;
const BPB_END: usize = 0x5a;
const KERNEL_SECTOR: usize = 0x5c;
const BOOT_DRIVE: usize = 0x64;
const DRIVE_CHECK: usize = 0x66;
const WINDOWS_NT_MAGIC: usize = 0x1b8;
const PART_END: usize = 0x1fe;
/// One blocklist entry: start (u64), len (u16), segment (u16).
const BLOCKLIST_SIZE: usize = 12;
/// GRUB_BOOT_I386_PC_KERNEL_SEG: diskboot itself is loaded at 0x800:0.
const KERNEL_SEG: u16 = 0x800;
const SECTOR: usize = 512;

/// Modules built into core.img: enough to read the config from an ext2/3/4
/// partition on a BIOS disk (MBR or GPT) and drive the serial console. Everything else
/// loads from `/boot/grub/i386-pc` at run time.
pub const CORE_MODULES: &[&str] = &[
    "biosdisk",
    "part_msdos",
    "part_gpt",
    "ext2",
    "serial",
    "terminal",
    "normal",
    "linux",
    "search",
    "search_fs_uuid",
    "echo",
    "test",
    "configfile",
];

/// Modules built into `BOOTX64.EFI`: the ESP and the root filesystem on GPT or MBR, the
/// Linux loader, the search and configuration commands, the serial console.
pub const EFI_MODULES: &[&str] = &[
    "part_gpt",
    "part_msdos",
    "fat",
    "ext2",
    "normal",
    "linux",
    "search",
    "search_fs_uuid",
    "configfile",
    "echo",
    "test",
    "serial",
    "terminal",
    "efi_gop",
];

/// The platform directory of the host's GRUB build.
pub const DEFAULT_DIR: &str = "/usr/lib/grub/i386-pc";

/// The host's GRUB build for UEFI.
pub const DEFAULT_EFI_DIR: &str = "/usr/lib/grub/x86_64-efi";

/// Where the UEFI GRUB reads its configuration: the ESP's directory it boots from.
pub const EFI_PREFIX: &str = "/EFI/BOOT";

/// A GRUB platform fsmaker installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// BIOS: boot.img and core.img.
    I386Pc,
    /// UEFI: one EFI application.
    X86_64Efi,
}

impl Platform {
    /// `grub-mkimage -O`'s name.
    fn format(self) -> &'static str {
        match self {
            Platform::I386Pc => "i386-pc",
            Platform::X86_64Efi => "x86_64-efi",
        }
    }

    /// The Debian package that holds its directory.
    fn package(self) -> &'static str {
        match self {
            Platform::I386Pc => "grub-pc-bin",
            Platform::X86_64Efi => "grub-efi-amd64-bin",
        }
    }

    /// The files its directory must hold.
    fn wanted(self) -> Vec<String> {
        let (images, modules): (&[&str], &[&str]) = match self {
            Platform::I386Pc => (&["boot.img", "diskboot.img"], CORE_MODULES),
            Platform::X86_64Efi => (&[], EFI_MODULES),
        };
        let mut w: Vec<String> = images.iter().map(|s| s.to_string()).collect();
        w.extend(["kernel.img".to_string(), "moddep.lst".to_string()]);
        w.extend(modules.iter().map(|m| format!("{m}.mod")));
        w
    }
}

/// A GRUB build directory of one platform, checked to hold what fsmaker needs.
#[derive(Debug, Clone)]
pub struct GrubDir {
    /// The directory (kernel.img, *.mod, *.lst; boot.img, diskboot.img for i386-pc).
    pub dir: PathBuf,
    /// Its platform.
    pub platform: Platform,
}

impl GrubDir {
    /// Checks `dir` for what `platform`'s image needs: its images, kernel.img, moddep.lst
    /// and the modules built in.
    pub fn locate(dir: &Path, platform: Platform) -> Result<GrubDir, BuildError> {
        for w in platform.wanted() {
            if !dir.join(&w).is_file() {
                return Err(BuildError::GrubMissing {
                    path: dir.join(w),
                    package: platform.package(),
                });
            }
        }
        Ok(GrubDir {
            dir: dir.to_owned(),
            platform,
        })
    }

    /// The files to copy into `/boot/grub/i386-pc` (modules and their lists), sorted.
    pub fn runtime_files(&self) -> Result<Vec<PathBuf>, BuildError> {
        let rd = std::fs::read_dir(&self.dir)
            .map_err(|e| BuildError::io(format!("cannot list {}", self.dir.display()), e))?;
        let mut v: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("mod" | "lst")))
            .collect();
        v.sort();
        Ok(v)
    }

    /// Builds the platform's image with `grub-mkimage` and `prefix`: core.img for BIOS
    /// (`(,msdos1)/boot/grub` or `(,gpt1)/boot/grub`: the boot disk's first partition),
    /// `BOOTX64.EFI` for UEFI ([`EFI_PREFIX`]).
    pub fn mkimage(&self, workdir: &Path, prefix: &str) -> Result<Vec<u8>, BuildError> {
        let format = self.platform.format();
        let (out, modules) = match self.platform {
            Platform::I386Pc => (workdir.join("core.img"), CORE_MODULES),
            Platform::X86_64Efi => (workdir.join("BOOTX64.EFI"), EFI_MODULES),
        };
        let mut cmd = Command::new("grub-mkimage");
        cmd.args(["-O", format, "-p", prefix, "-d"])
            .arg(&self.dir)
            .arg("-o")
            .arg(&out)
            .args(modules);
        helper::run(&mut cmd, "grub-common")?;
        std::fs::read(&out).map_err(|e| BuildError::io(format!("cannot read {}", out.display()), e))
    }

    /// boot.img, the 512-byte MBR boot code.
    pub fn boot_img(&self) -> Result<Vec<u8>, BuildError> {
        let p = self.dir.join("boot.img");
        let b = std::fs::read(&p)
            .map_err(|e| BuildError::io(format!("cannot read {}", p.display()), e))?;
        if b.len() != SECTOR {
            return Err(BuildError::Grub(format!(
                "{} is {} bytes, not 512",
                p.display(),
                b.len()
            )));
        }
        Ok(b)
    }
}

/// Returns the new sector 0: `boot_img` patched for a hard disk whose core image starts
/// at `core_sector`, keeping the BPB and partition table of `old_mbr`.
pub fn patch_boot_img(boot_img: &[u8], old_mbr: &[u8], core_sector: u64) -> Vec<u8> {
    let mut b = boot_img.to_vec();
    b[BPB_START..BPB_END].copy_from_slice(&old_mbr[BPB_START..BPB_END]);
    b[DRIVE_CHECK] = 0x90;
    b[DRIVE_CHECK + 1] = 0x90;
    b[WINDOWS_NT_MAGIC..PART_END].copy_from_slice(&old_mbr[WINDOWS_NT_MAGIC..PART_END]);
    b[BOOT_DRIVE] = 0xff;
    b[KERNEL_SECTOR..KERNEL_SECTOR + 8].copy_from_slice(&core_sector.to_le_bytes());
    b
}

/// Returns core.img padded to whole sectors with its blocklist pointing at the
/// sectors that follow `core_sector` (where it is embedded contiguously).
pub fn patch_core_img(core: &[u8], core_sector: u64) -> Result<Vec<u8>, BuildError> {
    let sectors = core.len().div_ceil(SECTOR);
    if core.len() < SECTOR || sectors > 0xffff {
        return Err(BuildError::Grub(format!(
            "core.img has an unusable size ({} bytes)",
            core.len()
        )));
    }
    let mut c = core.to_vec();
    c.resize(sectors * SECTOR, 0);
    let first = SECTOR - BLOCKLIST_SIZE;
    let len_at = |c: &[u8], o: usize| u16::from_le_bytes([c[o + 8], c[o + 9]]);
    // Clean out the blocklists, walking down until the terminator (len == 0).
    let mut o = first;
    while len_at(&c, o) != 0 {
        c[o..o + BLOCKLIST_SIZE].fill(0);
        if o < BLOCKLIST_SIZE {
            return Err(BuildError::Grub("no terminator in the core image".into()));
        }
        o -= BLOCKLIST_SIZE;
    }
    if sectors > 1 {
        c[first..first + 8].copy_from_slice(&(core_sector + 1).to_le_bytes());
        c[first + 8..first + 10].copy_from_slice(&((sectors - 1) as u16).to_le_bytes());
        let segment = KERNEL_SEG + (SECTOR as u16 >> 4);
        c[first + 10..first + 12].copy_from_slice(&segment.to_le_bytes());
        // The next entry down is the terminator.
        c[first - BLOCKLIST_SIZE..first].fill(0);
    }
    Ok(c)
}

/// The ESP's `grub.cfg`: finds the root filesystem by UUID and reads its
/// `/boot/grub/grub.cfg`, the one configuration BIOS and UEFI boots share.
pub fn esp_config(uuid: &str) -> String {
    format!(
        "# Generated by fsmaker.\n\
         search --no-floppy --fs-uuid --set=root {uuid}\n\
         set prefix=($root)/boot/grub\n\
         configfile $prefix/grub.cfg\n"
    )
}

/// The generated `/boot/grub/grub.cfg`: serial and VGA console (under UEFI the firmware's
/// console, which the firmware itself mirrors to the serial port), 1 s menu, one Linux
/// entry. `args` are the kernel's arguments as [`linux_args`] quoted them.
pub fn config(uuid: &str, title: &str, kernel: &str, initrd: Option<&str>, args: &str) -> String {
    let mut s = format!(
        "# Generated by fsmaker.\n\
         if [ \"$grub_platform\" = efi ]; then\n\
         \tterminal_input console\n\
         \tterminal_output console\n\
         else\n\
         \tserial --unit=0 --speed=115200\n\
         \tterminal_input serial console\n\
         \tterminal_output serial console\n\
         fi\n\
         set timeout=1\n\
         set default=0\n\
         search --no-floppy --fs-uuid --set=root {}\n\
         menuentry {} {{\n\
         \tlinux {} {args}\n",
        quote(uuid),
        quote(title),
        quote(kernel),
    );
    if let Some(i) = initrd {
        s.push_str(&format!("\tinitrd {}\n", quote(i)));
    }
    s.push_str("}\n");
    s
}

/// `s` as one literal word of GRUB's script language: as it is when it holds only
/// letters, digits and `.,-_=:/+@%^`, else in single quotes, inside which nothing is
/// special (`$`, `;`, `{`, `*`, spaces), each `'` written as `'\''`.
pub fn quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || ".,-_=:/+@%^".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The largest kernel command line x86 Linux takes, without its terminating NUL.
const MAX_CMDLINE: usize = 2047;

/// The kernel command line `cmdline` as the words of a `linux` command in `grub.cfg`, each
/// quoted ([`quote`]), such that the kernel gets the same arguments; or why GRUB cannot
/// pass it on unchanged. Arguments are split as Linux splits them, at whitespace outside
/// double quotes. Double quotes may only enclose a whole argument or its value
/// (`p="a b"`), to keep spaces: GRUB takes the argument without them and quotes it again
/// when it holds a space. A single quote or a backslash (which GRUB escapes), a control
/// character (a newline would end the command) and a line longer than the kernel takes
/// are refused.
pub fn linux_args(cmdline: &str) -> Result<String, String> {
    if let Some(c) = cmdline
        .chars()
        .find(|c| c.is_control() || *c == '\'' || *c == '\\')
    {
        return Err(format!(
            "{c:?} cannot be passed to the kernel through GRUB unchanged"
        ));
    }
    if cmdline.len() > MAX_CMDLINE {
        return Err(format!(
            "{} bytes is longer than the {MAX_CMDLINE} bytes of a kernel command line",
            cmdline.len()
        ));
    }
    let words = kernel_words(cmdline)?;
    let args: Result<Vec<String>, String> = words.iter().map(|w| unquoted(w)).collect();
    Ok(args?.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "))
}

/// `cmdline` split as Linux splits its command line: at whitespace outside double quotes.
fn kernel_words(cmdline: &str) -> Result<Vec<&str>, String> {
    let mut words = Vec::new();
    let (mut start, mut quoted) = (None, false);
    for (i, c) in cmdline.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if let Some(s) = start.take() {
                    words.push(&cmdline[s..i]);
                }
                continue;
            }
            _ => {}
        }
        start.get_or_insert(i);
    }
    if quoted {
        return Err("a double quote is not closed".into());
    }
    words.extend(start.map(|s| &cmdline[s..]));
    Ok(words)
}

/// One kernel argument without the double quotes that keep its spaces together, if they
/// enclose the whole argument (`"p=a b"`) or its value (`p="a b"`).
fn unquoted(word: &str) -> Result<String, String> {
    if !word.contains('"') {
        return Ok(word.to_string());
    }
    let inner = |s: &str| {
        s.strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .filter(|s| !s.contains('"'))
            .map(str::to_string)
    };
    let value = word
        .split_once('=')
        .filter(|(p, _)| !p.contains('"'))
        .and_then(|(p, v)| inner(v).map(|v| format!("{p}={v}")));
    inner(word).or(value).ok_or_else(|| {
        format!("in {word}, double quotes may only enclose a whole argument or its value")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_img_is_patched_like_grub_bios_setup() {
        let boot: Vec<u8> = (0..512).map(|i| (i % 251) as u8).collect();
        let mut old = vec![0u8; 512];
        old[0x1be] = 0x80;
        old[0x1b8] = 0xAB;
        let b = patch_boot_img(&boot, &old, 1);
        assert_eq!(&b[0..3], &boot[0..3]);
        assert!(b[BPB_START..BPB_END].iter().all(|&x| x == 0));
        assert_eq!(&b[0x5c..0x64], &1u64.to_le_bytes());
        assert_eq!(b[0x64], 0xff);
        assert_eq!(&b[0x66..0x68], &[0x90, 0x90]);
        assert_eq!(b[0x1b8], 0xAB);
        assert_eq!(b[0x1be], 0x80);
        assert_eq!(&b[0x1fe..], &boot[0x1fe..]);
        assert_eq!(&b[0x68..0x1b8], &boot[0x68..0x1b8]);
    }

    #[test]
    fn core_blocklist_points_after_first_sector() {
        let mut core = vec![0u8; 512 * 3 + 100];
        // A stale entry as grub-mkimage may leave it.
        core[500..508].copy_from_slice(&7u64.to_le_bytes());
        core[508..510].copy_from_slice(&9u16.to_le_bytes());
        let c = patch_core_img(&core, 1).unwrap();
        assert_eq!(c.len(), 512 * 4);
        assert_eq!(&c[500..508], &2u64.to_le_bytes());
        assert_eq!(&c[508..510], &3u16.to_le_bytes());
        assert_eq!(&c[510..512], &0x820u16.to_le_bytes());
        assert!(c[488..500].iter().all(|&x| x == 0));
        assert!(patch_core_img(&[0u8; 100], 1).is_err());
    }

    #[test]
    fn config_names_root_and_serial() {
        let c = config(
            "u-u",
            "Linux 6.1",
            "/boot/vmlinuz-6.1",
            Some("/boot/initrd.img-6.1"),
            &linux_args("root=UUID=u-u ro").unwrap(),
        );
        assert!(c.contains("\tserial --unit=0 --speed=115200\n"));
        assert!(c.contains("\tterminal_input serial console\n"));
        assert!(c.contains("if [ \"$grub_platform\" = efi ]; then\n\tterminal_input console\n"));
        let esp = esp_config("u-u");
        assert!(esp.contains("search --no-floppy --fs-uuid --set=root u-u\n"));
        assert!(esp.ends_with("configfile $prefix/grub.cfg\n"));
        assert!(c.contains("set timeout=1\n"));
        assert!(c.contains("menuentry 'Linux 6.1' {\n"));
        assert!(c.contains(
            "\tlinux /boot/vmlinuz-6.1 root=UUID=u-u ro\n\tinitrd /boot/initrd.img-6.1\n}"
        ));
        assert!(!config("u", "t", "/k", None, "x").contains("initrd"));
    }

    #[test]
    fn kernel_arguments_become_literal_grub_words() {
        let args = |s| linux_args(s).unwrap();
        assert_eq!(args("a=$x;b  c|d ro"), "'a=$x;b' 'c|d' ro");
        assert_eq!(
            args("console=ttyS0,115200 x=*"),
            "console=ttyS0,115200 'x=*'"
        );
        assert_eq!(
            args(r#"dyndbg="file a.c +p" quiet"#),
            "'dyndbg=file a.c +p' quiet"
        );
        assert_eq!(args(r#""p=a b""#), "'p=a b'");
        assert_eq!(args(""), "");
        assert_eq!(quote("it's"), r"'it'\''s'");
        for bad in [
            "a'b",
            r"a\b",
            "a\nb",
            "a\tb",
            r#"p="a"#,
            r#"a"b"c"#,
            r#"p"x"=y"#,
        ] {
            assert!(linux_args(bad).is_err(), "{bad:?} accepted");
        }
        assert!(linux_args(&"x".repeat(MAX_CMDLINE + 1)).is_err());
    }

    #[test]
    fn grub_script_check_accepts_every_generated_config() {
        let dir = tempfile::tempdir().unwrap();
        let nasty = [
            "a=$x;b c|d {e} #f `g` &h <i> *j",
            r#"dyndbg="file a.c +p" x=" spaced " y"#,
            "",
        ];
        for (i, append) in nasty.iter().enumerate() {
            let cfg = config(
                "u",
                "Linux it's $v; {x}",
                "/boot/vmlinuz-6.1 x;y",
                Some("/boot/initrd'x"),
                &linux_args(append).unwrap(),
            );
            let path = dir.path().join(format!("grub{i}.cfg"));
            std::fs::write(&path, &cfg).unwrap();
            let out = std::process::Command::new("grub-script-check")
                .arg(&path)
                .output()
                .expect("grub-script-check (grub-common) is installed");
            assert!(
                out.status.success(),
                "{cfg}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

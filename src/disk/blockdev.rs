//! Block-device operations behind a small trait, so the copy logic can be
//! tested with a fake and the real `ioctl`s stay in one place.
//!
//! Data is written with ordinary `pwrite`s by the caller; this module only
//! owns what needs the kernel's block layer: the size, zeroing or discarding a
//! range, flushing, re-reading the partition table, and whether the device (or
//! one of its partitions) is mounted.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// What sparsecopy needs from a block device besides `pwrite`.
pub trait BlockDevice {
    /// The device size in bytes (`BLKGETSIZE64`).
    fn size(&self) -> io::Result<u64>;
    /// Make `len` bytes at `offset` read back as zeros (`BLKZEROOUT`).
    fn zero_out(&self, offset: u64, len: u64) -> io::Result<()>;
    /// Discard `len` bytes at `offset` (`BLKDISCARD`).
    fn discard(&self, offset: u64, len: u64) -> io::Result<()>;
    /// Ask the kernel to re-read the partition table (`BLKRRPART`).
    fn reread_partitions(&self) -> io::Result<()>;
}

/// An open block device, driven by real `ioctl`s.
pub struct RealDevice {
    file: File,
}

impl RealDevice {
    /// The device open as `file` (read-write for the writing operations).
    pub fn new(file: File) -> Self {
        RealDevice { file }
    }

    fn range_ioctl(&self, request: libc::c_ulong, offset: u64, len: u64) -> io::Result<()> {
        let range: [u64; 2] = [offset, len];
        // SAFETY: the request takes a pointer to two u64 (start, length).
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), request as _, range.as_ptr()) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

// From <linux/fs.h>.
const BLKRRPART: libc::c_ulong = 0x125f;
const BLKDISCARD: libc::c_ulong = 0x1277;
const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
const BLKZEROOUT: libc::c_ulong = 0x127f;

impl BlockDevice for RealDevice {
    fn size(&self) -> io::Result<u64> {
        let mut size: u64 = 0;
        // SAFETY: BLKGETSIZE64 writes one u64 through the pointer.
        let rc = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                BLKGETSIZE64 as _,
                &mut size as *mut u64,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(size)
        }
    }

    fn zero_out(&self, offset: u64, len: u64) -> io::Result<()> {
        self.range_ioctl(BLKZEROOUT, offset, len)
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        self.range_ioctl(BLKDISCARD, offset, len)
    }

    fn reread_partitions(&self) -> io::Result<()> {
        // SAFETY: BLKRRPART takes no argument.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), BLKRRPART as _, 0) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// The mount point of the first mounted file system that lives on the block
/// device `rdev` or on one of its partitions, given `/proc/self/mounts` text.
/// `resolve` maps a mount source path to its device number and, for a
/// partition, its whole disk's device number.
pub fn mounted_on(
    rdev: u64,
    mounts: &str,
    resolve: impl Fn(&str) -> Option<(u64, Option<u64>)>,
) -> Option<String> {
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let source = fields.next()?;
        let target = fields.next()?;
        if !source.starts_with('/') {
            return None;
        }
        let (dev, parent) = resolve(source)?;
        (dev == rdev || parent == Some(rdev)).then(|| unescape_mount_field(target))
    })
}

/// `/proc/self/mounts` escapes space, tab, newline and backslash as octal.
fn unescape_mount_field(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The real resolver for [`mounted_on`]: `stat` the source, and find a
/// partition's disk through `/sys/dev/block/MAJ:MIN/../dev`.
pub fn resolve_block_source(source: &str) -> Option<(u64, Option<u64>)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(source).ok()?;
    if !meta.file_type().is_block_device() {
        return None;
    }
    let rdev = meta.rdev();
    let sys = format!("/sys/dev/block/{}:{}", libc::major(rdev), libc::minor(rdev));
    let parent = if Path::new(&sys).join("partition").exists() {
        std::fs::read_to_string(Path::new(&sys).join("../dev"))
            .ok()
            .and_then(|s| {
                let (maj, min) = s.trim().split_once(':')?;
                Some(libc::makedev(maj.parse().ok()?, min.parse().ok()?))
            })
    } else {
        None
    };
    Some((rdev, parent))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "proc /proc proc rw 0 0\n\
        /dev/vda1 / ext4 rw 0 0\n\
        /dev/sdb2 /mnt/my\\040disk ext4 rw 0 0\n\
        tmpfs /tmp tmpfs rw 0 0\n";

    fn fake(source: &str) -> Option<(u64, Option<u64>)> {
        match source {
            "/dev/vda1" => Some((0xfd01, Some(0xfd00))),
            "/dev/sdb2" => Some((0x812, Some(0x810))),
            _ => None,
        }
    }

    #[test]
    fn a_device_is_mounted_if_it_or_a_partition_of_it_is() {
        assert_eq!(mounted_on(0xfd01, MOUNTS, fake).as_deref(), Some("/"));
        assert_eq!(mounted_on(0xfd00, MOUNTS, fake).as_deref(), Some("/"));
        assert_eq!(
            mounted_on(0x810, MOUNTS, fake).as_deref(),
            Some("/mnt/my disk")
        );
        assert_eq!(mounted_on(0x811, MOUNTS, fake), None);
        assert_eq!(mounted_on(0x820, MOUNTS, fake), None);
    }

    #[test]
    fn real_ioctls_refuse_a_regular_file() {
        // No block device is needed in CI: the real calls must fail cleanly
        // (ENOTTY) on a regular file, never pretend to succeed.
        let f = tempfile::tempfile().unwrap();
        let dev = RealDevice::new(f);
        let not_tty = |r: io::Result<()>| r.unwrap_err().raw_os_error() == Some(libc::ENOTTY);
        assert_eq!(dev.size().unwrap_err().raw_os_error(), Some(libc::ENOTTY));
        assert!(not_tty(dev.zero_out(0, 4096)));
        assert!(not_tty(dev.discard(0, 4096)));
        assert!(not_tty(dev.reread_partitions()));
    }

    #[test]
    fn the_real_resolver_ignores_non_devices() {
        assert_eq!(resolve_block_source("/proc"), None);
        assert_eq!(resolve_block_source("/nonexistent"), None);
    }
}

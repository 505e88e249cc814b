//! What is inside a disk image: its format and its partition table.
//!
//! [`sniff`] recognises formats from magic numbers; [`table`] reads MBR and
//! GPT partition tables (with `mbrman` and `gpt`) and describes an image for
//! `sparsecopy --info`; [`blockdev`] owns the block-device `ioctl`s; [`gpt`] moves a
//! GPT's backup to the end of a disk that grew; [`image`] decides what `imgtest run` was
//! given (raw, qcow2, vmdk, ISO) and where its root filesystem may be; [`qcow2`] reads a
//! qcow2 header; [`bootable`] which firmware can boot it (boot code, ESP loader, El Torito
//! platforms). Nothing here
//! writes an image except [`gpt::relocate_backup`], and nothing here copies one (that is
//! [`crate::sparsecopy`]).

pub mod blockdev;
pub mod bootable;
pub mod gpt;
pub mod image;
pub mod qcow2;
pub mod sniff;
pub mod table;

/// Opens `path` for reading with its metadata; a directory is an error (`EISDIR`), as
/// reading one would be.
pub fn open_for_reading(
    path: &std::path::Path,
) -> std::io::Result<(std::fs::File, std::fs::Metadata)> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
    }
    Ok((file, meta))
}

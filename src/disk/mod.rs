//! What is inside a disk image: its format and its partition table.
//!
//! [`sniff`] recognises formats from magic numbers; [`table`] reads MBR and
//! GPT partition tables (with `mbrman` and `gpt`) and describes an image for
//! `sparsecopy --info`; [`blockdev`] owns the block-device `ioctl`s; [`gpt`] moves a
//! GPT's backup to the end of a disk that grew; [`image`] decides what `imgtest run` was
//! given (raw, qcow2, vmdk, ISO) and where its root filesystem may be. Nothing here
//! writes an image except [`gpt::relocate_backup`], and nothing here copies one (that is
//! [`crate::sparsecopy`]).

pub mod blockdev;
pub mod gpt;
pub mod image;
pub mod sniff;
pub mod table;

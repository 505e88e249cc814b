//! imgtest: build virtual-machine disk images and prove they are fit to publish.
//!
//! One library behind three thin binaries: `sparsecopy` (the sparse-aware block
//! copier in [`sparsecopy`]), `fsmaker` (bootable disk images, [`fsmaker`]) and
//! `imgtest` (boot an image the way the platform will and check it, [`run`]).
//! Binaries parse flags into a plan, call the library and map the result to an
//! exit code from [`exit`]; nothing below the CLI prints or exits.

#![warn(missing_docs)]

pub mod checks;
pub mod cli;
pub mod cloudinit;
pub mod console;
pub mod disk;
pub mod encoding;
pub mod exit;
pub mod facts;
pub mod fs;
pub mod fsmaker;
#[cfg(test)]
pub(crate) mod fuzz;
pub mod guest;
pub mod helper;
pub mod interrupt;
pub mod matrix;
pub mod metadata;
pub mod named;
pub mod offline;
pub mod report;
pub mod run;
pub mod scratch;
pub mod sparsecopy;
pub mod units;
pub mod vm;
pub mod wait;

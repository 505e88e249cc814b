//! Disk images: what format an image is in and where its filesystems are.

pub mod image;

//! `fsmaker ROOTFS OUT.img`: a bootable disk image from a bare root filesystem.
//! The command line lives in [`imgtest::cli::fsmaker`].

fn main() -> std::process::ExitCode {
    imgtest::cli::fsmaker::main()
}

//! `imgtest`: boot an image the way the platform will and check its first boot is safe.
//! The command line lives in [`imgtest::cli::imgtest`].

fn main() -> std::process::ExitCode {
    imgtest::cli::imgtest::main()
}

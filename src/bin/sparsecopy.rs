//! `sparsecopy SRC DST`: copy disk images keeping holes.
//! The command line lives in [`imgtest::cli::sparsecopy`].

fn main() -> std::process::ExitCode {
    imgtest::cli::sparsecopy::main()
}

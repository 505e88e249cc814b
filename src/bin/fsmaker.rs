//! `fsmaker`: not yet implemented.

fn main() {
    eprintln!("fsmaker: not yet implemented");
    std::process::exit(imgtest::exit::ERROR);
}

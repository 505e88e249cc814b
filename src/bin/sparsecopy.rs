//! `sparsecopy`: not yet implemented.

fn main() {
    eprintln!("sparsecopy: not yet implemented");
    std::process::exit(imgtest::exit::ERROR);
}

//! `imgtest`: not yet implemented.

fn main() {
    eprintln!("imgtest: not yet implemented");
    std::process::exit(imgtest::exit::ERROR);
}

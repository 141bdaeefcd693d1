fn main() {
    swarmseal::hygiene::disable_core_dumps();
    std::process::exit(swarmseal::cli::run());
}

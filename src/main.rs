fn main() {
    swarmseal::hygiene::disable_core_dumps();
    // Before any thread exists: no child process inherits the identity text.
    swarmseal::crypto::capture_env_key();
    std::process::exit(swarmseal::cli::run());
}

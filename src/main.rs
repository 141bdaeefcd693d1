fn main() {
    std::process::exit(swarmseal::cli_main());
}

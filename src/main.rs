/// mimalloc, not the system allocator: a plan at 10,000 secrets makes and frees hundreds of
/// thousands of small strings, and glibc's allocator spent a quarter of the process's time
/// on them (README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(swarmseal::cli_main());
}

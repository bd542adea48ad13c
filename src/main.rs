use std::process::ExitCode;

use clap::Parser;

/// jemalloc rather than the C library's allocator. With glibc's, a burst of large upstream
/// answers (100 at once, 1 MB of JSON each) left 80–120 MB resident for good after
/// `malloc_trim` — free memory at the top of its per-thread heaps, which that call does not
/// return — and parsing them took longer: in `scripts/answer-burst.sh` far fewer were read
/// before their deadline. jemalloc's background thread hands freed memory back within
/// seconds. Linux only, where it is built and measured.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    match confirm_proxy::cli::Cli::try_parse() {
        Ok(cli) => confirm_proxy::cli::run(cli),
        Err(e) => confirm_proxy::cli::refused(e),
    }
}

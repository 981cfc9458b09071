//! The `cachekeeper` command; everything lives in the library.

fn main() -> std::process::ExitCode {
    cachekeeper::cli::main()
}

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    driftwatch::cli::main()
}

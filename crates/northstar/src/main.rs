//! The `northstar` command.

fn main() -> std::process::ExitCode {
    northstar::cli::main()
}

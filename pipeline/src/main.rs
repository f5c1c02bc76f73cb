//! The `tcpscope` binary.

fn main() -> std::process::ExitCode {
    tcpscope::cli::main()
}

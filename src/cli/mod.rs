//! The subcommands of the `callbackstream` binary, one per file.

pub mod bench;
pub mod demo;
pub mod invoke;
pub mod serve;
pub mod soak;

/// What a subcommand returns: an exit code, or an error to print.
pub type CliResult = Result<std::process::ExitCode, Box<dyn std::error::Error>>;

/// A `Duration` from human text such as `10s`, `500ms` or `2m`.
pub fn duration(text: &str) -> Result<std::time::Duration, humantime::DurationError> {
    humantime::parse_duration(text)
}

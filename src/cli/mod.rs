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

/// A `Duration` that must be more than zero: an interval or a timeout of
/// zero would make the gateway spin or give up at once, so it is refused at
/// start rather than obeyed.
pub fn positive_duration(text: &str) -> Result<std::time::Duration, String> {
    match duration(text) {
        Ok(d) if d.is_zero() => Err("must be more than zero".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// A count that must be at least one: a limit of zero would refuse everything.
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

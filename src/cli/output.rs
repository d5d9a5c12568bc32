//! One way to print a command's result: pretty JSON with `--json`, the
//! command's own text otherwise.

use serde::Serialize;

pub fn print<T: Serialize>(json: bool, value: &T, text: impl FnOnce(&T)) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        text(value);
    }
    Ok(())
}

/// Exit 1 when `failed`, else success: the shell's "did it hold?".
pub fn exit_code(failed: bool) -> std::process::ExitCode {
    if failed {
        std::process::ExitCode::from(1)
    } else {
        std::process::ExitCode::SUCCESS
    }
}

/// A progress bar on standard error when it is a terminal; drawn nowhere
/// when piped, so scripts and logs see only the result.
pub fn progress(length: u64, message: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(length),
        indicatif::ProgressDrawTarget::stderr_with_hz(4),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg:28} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({eta} left)",
    ) {
        bar.set_style(style);
    }
    bar.set_message(message);
    bar
}

/// [`progress`], or nothing when `hidden` (`--json`).
pub fn progress_unless(hidden: bool, length: u64, message: &'static str) -> indicatif::ProgressBar {
    if hidden {
        indicatif::ProgressBar::hidden()
    } else {
        progress(length, message)
    }
}

/// A counter for work of unknown length (objects at the processor), on a
/// terminal only, and never when `hidden` (`--json`).
pub fn counter(message: &'static str, hidden: bool) -> indicatif::ProgressBar {
    if hidden {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        None,
        indicatif::ProgressDrawTarget::stderr_with_hz(4),
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed_precise}] {human_pos}")
    {
        bar.set_style(style);
    }
    bar.set_message(message);
    bar
}

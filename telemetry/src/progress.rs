//! Progress on long work, for people at a terminal: a spinner on stderr with what is being
//! done and for how long, cleared when the work ends. indicatif draws nothing when stderr is
//! not a terminal, so a log, a pipe or CI gets no escape codes and no noise.

use std::time::Duration;

/// A spinner that lives as long as the work: dropping it clears it.
pub struct Spinner(indicatif::ProgressBar);

/// Starts a spinner saying `message` (e.g. "loading 3114 indicator sources").
pub fn spinner(message: impl Into<String>) -> Spinner {
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
    bar.set_style(style);
    bar.set_message(message.into());
    bar.enable_steady_tick(Duration::from_millis(120));
    Spinner(bar)
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

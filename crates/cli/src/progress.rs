//! The progress bar on stderr: a [`Monitor`] that stays invisible for the
//! first moments of a run, so quick runs print nothing extra, and appears
//! only when stderr is a terminal and `--quiet` was not given.

use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kettle_core::{Monitor, Progress};

/// Runs shorter than this never show a bar.
const SHOW_AFTER: Duration = Duration::from_millis(1500);

/// Draws a bar of applied operations once a run has lasted [`SHOW_AFTER`].
pub(crate) struct ProgressMonitor {
    enabled: bool,
    started: Instant,
    bar: OnceLock<ProgressBar>,
}

impl ProgressMonitor {
    /// A bar for a run starting now; `quiet` (or a stderr that is not a
    /// terminal) turns it off.
    pub(crate) fn new(quiet: bool) -> ProgressMonitor {
        ProgressMonitor {
            enabled: !quiet && std::io::stderr().is_terminal(),
            started: Instant::now(),
            bar: OnceLock::new(),
        }
    }

    /// Removes the bar, if it was shown.
    pub(crate) fn finish(&self) {
        if let Some(bar) = self.bar.get() {
            bar.finish_and_clear();
        }
    }
}

impl Monitor for ProgressMonitor {
    fn on_progress(&self, progress: Progress) -> ControlFlow<()> {
        if !self.enabled || self.started.elapsed() < SHOW_AFTER {
            return ControlFlow::Continue(());
        }
        let bar = self.bar.get_or_init(|| {
            let bar =
                ProgressBar::with_draw_target(Some(progress.planned), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} simulating [{bar:40}] {pos}/{len} operations, {elapsed} (eta {eta})",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        // Branching runs apply more than one pass's operations.
        bar.set_length(progress.planned.max(progress.applied));
        bar.set_position(progress.applied);
        ControlFlow::Continue(())
    }
}

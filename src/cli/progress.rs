//! Live progress of `apply` on standard error.
//!
//! On a terminal: a live display (indicatif), one line per service being waited for with
//! its update state, tasks updated out of the total and the time so far, and the other
//! events printed above it. Elsewhere (a CI log): one line per event, and per service one
//! line each time its state or task count changes, so that a log reads as a story and never
//! looks hung. "update sent" and "converged" are separate events: a log cut short by Ctrl-C
//! still shows every update that was sent.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::apply::Event;
use crate::domain::text::clean;

/// Where progress goes.
pub struct ApplyProgress {
    mode: Mode,
}

enum Mode {
    Quiet,
    Lines {
        /// Per service: the last (state, done, total) printed.
        last: Mutex<BTreeMap<String, (String, usize, usize)>>,
    },
    Live {
        multi: MultiProgress,
        bars: Mutex<BTreeMap<String, ProgressBar>>,
    },
}

fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

impl ApplyProgress {
    /// Live on a terminal, lines elsewhere, nothing with `quiet`.
    pub fn new(quiet: bool) -> ApplyProgress {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal()
            && std::env::var_os("TERM").is_some_and(|t| t != "dumb")
        {
            Mode::Live {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: Mutex::new(BTreeMap::new()),
            }
        } else {
            Mode::Lines {
                last: Mutex::new(BTreeMap::new()),
            }
        };
        ApplyProgress { mode }
    }

    /// A line for an event that is not a service's state, or `None`.
    fn line(event: &Event) -> Option<String> {
        match event {
            Event::Created(name) => Some(format!("created {name}")),
            Event::Relabelled(name) => Some(format!("updated the labels of {name}")),
            Event::UpdateSent(service) => Some(format!("{}: update sent", clean(service))),
            Event::Converged { service, elapsed } => Some(format!(
                "{}: converged ({})",
                clean(service),
                seconds(*elapsed)
            )),
            Event::NotConverged(service) => Some(format!("{}: did not converge", clean(service))),
            Event::Removed(name) => Some(format!("removed {name}")),
            Event::Kept { swarm_name, why } => Some(format!("kept {swarm_name}: {why}")),
            Event::Waiting { .. } => None,
        }
    }

    /// Shows one event.
    pub fn event(&self, event: Event) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Lines { last } => {
                if let Some(line) = Self::line(&event) {
                    crate::cli::output::errln!("  {line}");
                    return;
                }
                if let Event::Waiting { service, progress } = event {
                    let now = (progress.state.to_string(), progress.done, progress.total);
                    let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                    if last.get(&service) != Some(&now) {
                        crate::cli::output::errln!(
                            "  {}: {}, {} of {} tasks updated ({})",
                            clean(&service),
                            progress.state,
                            progress.done,
                            progress.total,
                            seconds(progress.elapsed)
                        );
                        last.insert(service, now);
                    }
                }
            }
            Mode::Live { multi, bars } => {
                let mut bars = bars.lock().unwrap_or_else(|p| p.into_inner());
                match &event {
                    Event::Waiting { service, progress } => {
                        let bar = bars.entry(service.clone()).or_insert_with(|| {
                            let bar = multi.add(ProgressBar::new(progress.total as u64));
                            bar.set_style(
                                ProgressStyle::with_template(
                                    "  {prefix:20} {msg:16} [{bar:20}] {pos}/{len} tasks {elapsed}",
                                )
                                .unwrap_or_else(|_| ProgressStyle::default_bar())
                                .progress_chars("=> "),
                            );
                            bar.set_prefix(clean(service).into_owned());
                            bar.enable_steady_tick(Duration::from_millis(250));
                            bar
                        });
                        bar.set_length(progress.total as u64);
                        bar.set_position(progress.done as u64);
                        bar.set_message(progress.state);
                    }
                    Event::Converged { service, .. } | Event::NotConverged(service) => {
                        if let Some(bar) = bars.remove(service) {
                            bar.finish_and_clear();
                            multi.remove(&bar);
                        }
                        if let Some(line) = Self::line(&event) {
                            let _ = multi.println(format!("  {line}"));
                        }
                    }
                    _ => {
                        if let Some(line) = Self::line(&event) {
                            let _ = multi.println(format!("  {line}"));
                        }
                    }
                }
            }
        }
    }

    /// Clears the live display (before the summary is printed).
    pub fn finish(&self) {
        if let Mode::Live { multi, bars } = &self.mode {
            let mut bars = bars.lock().unwrap_or_else(|p| p.into_inner());
            for (_, bar) in std::mem::take(&mut *bars) {
                bar.finish_and_clear();
                multi.remove(&bar);
            }
            let _ = multi.clear();
        }
    }
}

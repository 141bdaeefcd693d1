//! Live progress of `apply` on standard error.
//!
//! On a terminal: a live display (indicatif), one line per service being waited for with
//! its update state, tasks updated out of the total and the time so far, and the other
//! events printed above it. Elsewhere (a CI log): one line per event, and per service one
//! line each time its state or task count changes, so that a log reads as a story and never
//! looks hung. "update sent" and "converged" are separate events: a log cut short by Ctrl-C
//! still shows every update that was sent.
//!
//! A phase over many secrets (creating, relabelling, removing) is one line when it ends,
//! `created 10,000 secrets (4.2s)`, not one line per secret: up to [`FEW`] secrets, or
//! with `-v`, each is named as it goes. On a terminal a phase that takes more than a moment
//! shows a bar with the count and the time so far; in a log a long phase says how far it got
//! every [`LOG_EVERY`]. Kept versions are listed one per line when few, else one line per
//! reason (`-v` names them all).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::apply::{Event, Phase};
use crate::cli::output::errln;
use crate::domain::text::clean;

/// Up to this many secrets, a phase names each as it goes and kept versions are listed one
/// per line; beyond, only with `-v`.
pub const FEW: usize = 10;
/// On a terminal, a phase shows its bar once it has taken this long.
const BAR_AFTER: Duration = Duration::from_millis(300);
/// In a log, a phase still under way says how far it got this often.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// How often the ticker looks at the phase under way.
const TICK: Duration = Duration::from_millis(100);

/// Where progress goes.
pub struct ApplyProgress {
    shared: Arc<Shared>,
    /// Shows bars and "still working" lines of a phase between its events; stops when the
    /// sender is dropped.
    ticker: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
}

/// What the events and the ticker share.
struct Shared {
    mode: Mode,
    /// `-v`: every secret named, however many.
    verbose: bool,
    /// The phase under way, if any.
    phase: Mutex<Option<Running>>,
    /// Kept versions told since the last other event, shown together.
    kept: Mutex<Vec<(String, String)>>,
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

/// A phase under way.
struct Running {
    phase: Phase,
    total: usize,
    done: usize,
    start: Instant,
    /// In a log: when a line last said how far it got.
    told: Instant,
    /// On a terminal: its bar, drawn once it has taken [`BAR_AFTER`].
    bar: Option<ProgressBar>,
    shown: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn seconds(d: Duration) -> String {
    crate::domain::text::duration(Duration::from_secs(d.as_secs()))
}

/// A count for people: `10,000`.
pub use crate::domain::text::number;

/// `1 secret`, `10,000 secrets`.
fn secrets(n: usize) -> String {
    crate::domain::text::plural(n, "secret")
}

/// What a phase is doing, for its bar and its "still working" lines.
fn doing(phase: Phase) -> &'static str {
    match phase {
        Phase::Create => "creating secrets",
        Phase::Relabel => "updating labels",
        Phase::Remove => "removing secrets",
    }
}

/// The line for one secret of a phase.
fn item_line(phase: Phase, name: &str) -> String {
    match phase {
        Phase::Create => format!("created {name}"),
        Phase::Relabel => format!("updated the labels of {name}"),
        Phase::Remove => format!("removed {name}"),
    }
}

/// The line for a phase that ended, `done` of `total` done: `created 10,000 secrets (4.2s)`,
/// or `removed 5 of 7 secrets (0.3s)` when some were not.
fn done_line(phase: Phase, done: usize, total: usize, elapsed: Duration) -> String {
    let what = if done == total {
        secrets(total)
    } else {
        format!("{} of {}", number(done), secrets(total))
    };
    let time = format!("{:.1}s", elapsed.as_secs_f64());
    match phase {
        Phase::Create => format!("created {what} ({time})"),
        Phase::Relabel => format!("updated the labels of {what} ({time})"),
        Phase::Remove => format!("removed {what} ({time})"),
    }
}

/// Lines about kept versions: one per version when few (or `verbose`), else one per
/// reason, in the order first told. `later` adds that a later apply removes them.
pub fn kept_lines(kept: &[(String, String)], verbose: bool, later: bool) -> Vec<String> {
    let tail = |many: bool| match (later, many) {
        (false, _) => "",
        (true, false) => "; a later apply removes it",
        (true, true) => "; a later apply removes them",
    };
    if verbose || kept.len() <= FEW {
        return kept
            .iter()
            .map(|(name, why)| format!("kept {name}: {why}{}", tail(false)))
            .collect();
    }
    // Per reason: where it was first told, how many, and the first name.
    let mut reasons: BTreeMap<&str, (usize, usize, &str)> = BTreeMap::new();
    for (i, (name, why)) in kept.iter().enumerate() {
        reasons.entry(why).or_insert((i, 0, name)).1 += 1;
    }
    let mut reasons: Vec<_> = reasons.into_iter().collect();
    reasons.sort_by_key(|(_, (first, ..))| *first);
    reasons
        .into_iter()
        .map(|(why, (_, n, name))| match n {
            1 => format!("kept {name}: {why}{}", tail(false)),
            _ => format!("kept {}: {why}{} (-v lists them)", secrets(n), tail(true)),
        })
        .collect()
}

/// A phase's bar, hidden until it is added to the display.
fn phase_bar(phase: Phase, total: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template("  {prefix:37} [{bar:20}] {human_pos}/{human_len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(doing(phase));
    bar
}

/// A service's bar of tasks updated.
fn service_bar(multi: &MultiProgress, service: &str, total: usize) -> ProgressBar {
    let bar = multi.add(ProgressBar::new(total as u64));
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
}

impl ApplyProgress {
    /// Live on a terminal, lines elsewhere, nothing with `quiet`; `verbose` names every
    /// secret.
    pub fn new(quiet: bool, verbose: bool) -> ApplyProgress {
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
        let quiet = matches!(mode, Mode::Quiet);
        let shared = Arc::new(Shared {
            mode,
            verbose,
            phase: Mutex::new(None),
            kept: Mutex::new(Vec::new()),
        });
        let ticker = if quiet {
            None
        } else {
            let (stop, stopped) = mpsc::channel::<()>();
            let ticking = shared.clone();
            std::thread::Builder::new()
                .name("progress".into())
                .spawn(move || {
                    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
                        ticking.tick();
                    }
                })
                .ok()
                .map(|handle| (stop, handle))
        };
        ApplyProgress {
            shared,
            ticker: Mutex::new(ticker),
        }
    }

    /// Shows one event.
    pub fn event(&self, event: Event) {
        let shared = &self.shared;
        if matches!(shared.mode, Mode::Quiet) {
            return;
        }
        if !matches!(event, Event::Kept { .. }) {
            shared.flush_kept();
        }
        match event {
            Event::Phase { phase, total } => shared.start(phase, total),
            Event::Created(name) => shared.item(Phase::Create, &name),
            Event::Relabelled(name) => shared.item(Phase::Relabel, &name),
            Event::Removed(name) => shared.item(Phase::Remove, &name),
            Event::Kept { swarm_name, why } => {
                shared.end();
                lock(&shared.kept).push((swarm_name, why));
            }
            other => {
                shared.end();
                shared.service_event(other);
            }
        }
    }

    /// Ends what is under way (a phase cut short says how far it got) and clears the live
    /// display, before the summary is printed.
    pub fn finish(&self) {
        self.stop_ticker();
        let shared = &self.shared;
        shared.flush_kept();
        shared.end();
        if let Mode::Live { multi, bars } = &shared.mode {
            let mut bars = lock(bars);
            for (_, bar) in std::mem::take(&mut *bars) {
                bar.finish_and_clear();
                multi.remove(&bar);
            }
            let _ = multi.clear();
        }
    }

    fn stop_ticker(&self) {
        if let Some((stop, handle)) = lock(&self.ticker).take() {
            drop(stop);
            let _ = handle.join();
        }
    }
}

impl Drop for ApplyProgress {
    fn drop(&mut self) {
        self.stop_ticker();
    }
}

impl Shared {
    /// Prints a line above the live display, or as a line of the log.
    fn print(&self, line: &str) {
        let line = clean(line);
        match &self.mode {
            Mode::Quiet => {}
            Mode::Lines { .. } => errln!("  {line}"),
            Mode::Live { multi, .. } => {
                let _ = multi.println(format!("  {line}"));
            }
        }
    }

    /// A phase starts (ending the one before, if any).
    fn start(&self, phase: Phase, total: usize) {
        self.end();
        let now = Instant::now();
        let bar = match self.mode {
            Mode::Live { .. } => Some(phase_bar(phase, total)),
            _ => None,
        };
        *lock(&self.phase) = Some(Running {
            phase,
            total,
            done: 0,
            start: now,
            told: now,
            bar,
            shown: false,
        });
    }

    /// One secret of `phase` done; the phase ends with its last.
    fn item(&self, phase: Phase, name: &str) {
        let mut current = lock(&self.phase);
        let Some(run) = current.as_mut().filter(|r| r.phase == phase) else {
            // Not announced: shown on its own.
            drop(current);
            self.end();
            self.print(&item_line(phase, name));
            return;
        };
        run.done += 1;
        if let Some(bar) = &run.bar {
            bar.inc(1);
        }
        if self.verbose || run.total <= FEW {
            self.print(&item_line(phase, name));
        }
        if run.done >= run.total {
            let run = current.take();
            drop(current);
            self.close(run);
        }
    }

    /// Ends the phase under way, if any.
    fn end(&self) {
        let run = lock(&self.phase).take();
        self.close(run);
    }

    /// Clears a phase's bar and says what it did: always for many secrets (those were not
    /// named), and for a few when it was cut short.
    fn close(&self, run: Option<Running>) {
        let Some(run) = run else { return };
        if let (Some(bar), Mode::Live { multi, .. }) = (&run.bar, &self.mode) {
            bar.finish_and_clear();
            if run.shown {
                multi.remove(bar);
            }
        }
        if run.total > FEW || run.done < run.total {
            self.print(&done_line(
                run.phase,
                run.done,
                run.total,
                run.start.elapsed(),
            ));
        }
    }

    /// Shows the kept versions told since the last other event.
    fn flush_kept(&self) {
        let kept = std::mem::take(&mut *lock(&self.kept));
        for line in kept_lines(&kept, self.verbose, false) {
            self.print(&line);
        }
    }

    /// Between events: shows the bar of a phase that takes more than a moment (terminal),
    /// or says how far a long one got (log).
    fn tick(&self) {
        let mut current = lock(&self.phase);
        let Some(run) = current.as_mut() else { return };
        match &self.mode {
            Mode::Quiet => {}
            Mode::Live { multi, .. } => {
                if let Some(bar) = run.bar.as_ref().filter(|_| !run.shown) {
                    if run.start.elapsed() >= BAR_AFTER {
                        multi.add(bar.clone());
                        bar.enable_steady_tick(Duration::from_millis(250));
                        run.shown = true;
                    }
                }
            }
            Mode::Lines { .. } => {
                if run.told.elapsed() >= LOG_EVERY {
                    run.told = Instant::now();
                    errln!(
                        "  {}: {} of {} ({})",
                        doing(run.phase),
                        number(run.done),
                        number(run.total),
                        seconds(run.start.elapsed())
                    );
                }
            }
        }
    }

    /// An event about a service: update sent, a poll while waiting, converged or not.
    fn service_event(&self, event: Event) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Lines { last } => {
                if let Event::Waiting { service, progress } = event {
                    let now = (progress.state.to_string(), progress.done, progress.total);
                    let mut last = lock(last);
                    if last.get(&service) != Some(&now) {
                        self.print(&format!(
                            "{service}: {}, {} of {} tasks updated ({})",
                            progress.state,
                            progress.done,
                            progress.total,
                            seconds(progress.elapsed)
                        ));
                        last.insert(service, now);
                    }
                } else if let Some(line) = service_line(&event) {
                    self.print(&line);
                }
            }
            Mode::Live { multi, bars } => {
                let mut bars = lock(bars);
                match &event {
                    Event::Waiting { service, progress } => {
                        let bar = bars
                            .entry(service.clone())
                            .or_insert_with(|| service_bar(multi, service, progress.total));
                        bar.set_length(progress.total as u64);
                        bar.set_position(progress.done as u64);
                        bar.set_message(progress.state);
                    }
                    Event::Converged { service, .. } | Event::NotConverged(service) => {
                        if let Some(bar) = bars.remove(service) {
                            bar.finish_and_clear();
                            multi.remove(&bar);
                        }
                    }
                    _ => {}
                }
                drop(bars);
                if let Some(line) = service_line(&event) {
                    self.print(&line);
                }
            }
        }
    }
}

/// The line for an event about a service other than a poll, or `None`.
fn service_line(event: &Event) -> Option<String> {
    match event {
        Event::UpdateSent(service) => Some(format!("{service}: update sent")),
        Event::Converged { service, elapsed } => {
            Some(format!("{service}: converged ({})", seconds(*elapsed)))
        }
        Event::NotConverged(service) => Some(format!("{service}: did not converge")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_thousands_separators() {
        let cases = [
            (0, "0"),
            (7, "7"),
            (999, "999"),
            (1000, "1,000"),
            (10_000, "10,000"),
            (123_456, "123,456"),
            (1_234_567, "1,234,567"),
        ];
        for (n, want) in cases {
            assert_eq!(number(n), want);
        }
    }

    #[test]
    fn a_phase_says_what_it_did() {
        let t = Duration::from_millis(4_210);
        assert_eq!(
            done_line(Phase::Create, 10_000, 10_000, t),
            "created 10,000 secrets (4.2s)"
        );
        assert_eq!(
            done_line(Phase::Relabel, 1, 1, t),
            "updated the labels of 1 secret (4.2s)"
        );
        assert_eq!(
            done_line(Phase::Remove, 5, 7, t),
            "removed 5 of 7 secrets (4.2s)"
        );
    }

    #[test]
    fn many_kept_versions_are_one_line_per_reason() {
        let kept = |n: usize| -> Vec<(String, String)> {
            (0..n)
                .map(|i| {
                    let why = if i % 3 == 1 { "b" } else { "a" };
                    (format!("s{i}"), why.to_string())
                })
                .chain(std::iter::once(("lone".to_string(), "c".to_string())))
                .collect()
        };
        let few = kept_lines(&kept(3), false, true);
        assert_eq!(
            few,
            [
                "kept s0: a; a later apply removes it",
                "kept s1: b; a later apply removes it",
                "kept s2: a; a later apply removes it",
                "kept lone: c; a later apply removes it",
            ]
        );
        let many = kept_lines(&kept(30), false, false);
        assert_eq!(
            many,
            [
                "kept 20 secrets: a (-v lists them)",
                "kept 10 secrets: b (-v lists them)",
                "kept lone: c",
            ]
        );
        assert_eq!(kept_lines(&kept(30), true, false).len(), 31);
    }
}

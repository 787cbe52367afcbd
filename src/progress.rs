//! Progress on stderr: one line per event, with the binary, the run and the elapsed time, so a
//! CI log of several interleaved runs stays readable. A stderr that cannot be written is ignored
//! ([`crate::cli::say`]): progress never kills an op.

use std::fmt::Display;
use std::time::Instant;

pub struct Progress {
    bin: &'static str,
    run: std::cell::RefCell<Option<String>>,
    start: std::cell::Cell<Instant>,
}

impl Progress {
    pub fn new(bin: &'static str) -> Progress {
        Progress { bin, run: Default::default(), start: std::cell::Cell::new(Instant::now()) }
    }

    /// Names the run in every later line and starts the clock again: in a pipe every stage
    /// starts at once, and the time spent waiting for the run-state is not this stage's work.
    pub fn set_run(&self, run: &str) {
        *self.run.borrow_mut() = Some(run.to_string());
        self.start.set(Instant::now());
    }

    pub fn log(&self, msg: impl Display) {
        let secs = self.start.get().elapsed().as_secs_f64();
        match &*self.run.borrow() {
            Some(run) => crate::cli::say(format_args!("[{} {run} {secs:6.1}s] {msg}", self.bin)),
            None => crate::cli::say(format_args!("[{} {secs:6.1}s] {msg}", self.bin)),
        }
    }

    pub fn elapsed_secs(&self) -> f64 {
        self.start.get().elapsed().as_secs_f64()
    }
}

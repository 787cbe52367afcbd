//! Progress on stderr: one line per event, with the binary, the run and the elapsed time, so a
//! CI log of several interleaved runs stays readable.

use std::fmt::Display;
use std::time::Instant;

pub struct Progress {
    bin: &'static str,
    run: std::cell::RefCell<Option<String>>,
    start: Instant,
}

impl Progress {
    pub fn new(bin: &'static str) -> Progress {
        Progress { bin, run: Default::default(), start: Instant::now() }
    }

    /// Names the run in every later line.
    pub fn set_run(&self, run: &str) {
        *self.run.borrow_mut() = Some(run.to_string());
    }

    pub fn log(&self, msg: impl Display) {
        let secs = self.start.elapsed().as_secs_f64();
        match &*self.run.borrow() {
            Some(run) => eprintln!("[{} {run} {secs:6.1}s] {msg}", self.bin),
            None => eprintln!("[{} {secs:6.1}s] {msg}", self.bin),
        }
    }

    pub fn elapsed_secs(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

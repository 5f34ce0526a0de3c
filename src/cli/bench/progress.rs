//! A progress line on stderr, only on a terminal (so that piped output and the one-line
//! error contract are untouched).

use std::io::{IsTerminal, Write};

pub struct Progress {
    total: usize,
    done: usize,
    on: bool,
}

impl Progress {
    /// A bar of `total` steps, shown if stderr is a terminal.
    pub fn new(total: usize) -> Self {
        Self {
            total,
            done: 0,
            on: std::io::stderr().is_terminal(),
        }
    }

    /// Shows `what` as the step now running.
    pub fn step(&mut self, what: &str) {
        if !self.on {
            return;
        }
        let width = 30;
        let filled = width * self.done / self.total.max(1);
        eprint!(
            "\r[{}{}] {}/{} {what:<40}",
            "=".repeat(filled),
            " ".repeat(width - filled),
            self.done,
            self.total
        );
        let _ = std::io::stderr().flush();
        self.done += 1;
    }

    /// Clears the line.
    pub fn finish(&self) {
        if self.on {
            eprint!("\r{}\r", " ".repeat(90));
        }
    }
}

//! ccci-report: the run-state as a terminal summary, JUnit XML or a Markdown PR comment.

use ccci::cli;
use ccci::error::exit;
use ccci::report::{self, Format};
use ccci::run::state::{Outcome, write_atomic};

const BIN: &str = "ccci-report";

const HELP: &str = "\
ccci-report: turn a run-state into a report for a person or a CI dashboard.

Usage: ccci-report [--state FILE] [--format text|junit|markdown] [--output FILE]

Reads the run-state from stdin (or FILE) and prints the report on stdout, or writes it to the
--output FILE (atomically). The run-state itself is not passed on: ccci-report ends the pipe.

Formats:
  text      (default) a header with the recipe, run, commit, driver and deploy count, the verdict,
            then one line per op and per assertion with its duration and detail
  junit     JUnit XML: one <testsuite> per op, one <testcase> per assertion (an op without
            assertions is one testcase named after it)
  markdown  a PR comment: a verdict headline, a table of the ops, a collapsible section per op

Details come from recipe output and are escaped for each format. A run that has a deploy op must
have deployed exactly once; otherwise the report says \"deploy-once violated (deploys = N)\" and
counts that as an error. How to read each format: docs/reports.md.

Options:
  --state FILE            read the run-state from FILE instead of stdin
  --format FORMAT         text, junit or markdown (default: text)
  --output FILE           write the report to FILE instead of stdout
  -h, --help              this text
  -V, --version           the version

Exit status: 0 every op passed or was skipped, 1 an op failed or errored or deploy-once was
violated, 2 bad input or usage (nothing on stdout), 3 the report could not be written.
";

fn main() {
    cli::main(BIN, |_progress| {
        let (mut state_file, mut format, mut output) = (None, None, None);
        let mut p = lexopt::Parser::from_env();
        while let Some(arg) = p.next().map_err(|e| cli::usage(BIN, e))? {
            use lexopt::prelude::*;
            match arg {
                Long("state") => cli::once(BIN, &mut state_file, "--state", || cli::value_path(BIN, p.value()))?,
                Long("format") => cli::once(BIN, &mut format, "--format", || {
                    Format::parse(&cli::value_string(BIN, p.value(), "--format")?)
                })?,
                Long("output") => cli::once(BIN, &mut output, "--output", || cli::value_path(BIN, p.value()))?,
                Short('h') | Long("help") => return cli::print_help(HELP),
                Short('V') | Long("version") => return cli::print_version(BIN),
                _ => return Err(cli::unexpected(BIN, arg)),
            }
        }
        let state = cli::state_in(state_file).read()?;
        let text = format.unwrap_or(Format::Text).render(&state);
        match output {
            Some(path) => write_atomic(&path, text.as_bytes())?,
            None => cli::out("the report", &text)?,
        }
        // Unlike the op binaries, which exit 3 for their own environment errors, the report sums
        // up the whole run: anything but pass or skip fails the CI step.
        Ok(match report::verdict(&state) {
            Outcome::Pass | Outcome::Skip => exit::PASS,
            Outcome::Fail | Outcome::Error => exit::FAILED,
        })
    })
}

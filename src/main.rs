//! The `ringsmr` command.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

use ringsmr::proto::Protocol;
use ringsmr::sim::{self, SimConfig};

#[derive(Parser)]
#[command(name = "ringsmr", version, about = "State-machine replication on Ring Paxos")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProtocolArg {
    /// U-Ring Paxos: every process on one ring of unicast links.
    Uring,
    /// M-Ring Paxos: ip-multicast values, votes along a ring of f+1 acceptors.
    Mring,
}

impl From<ProtocolArg> for Protocol {
    fn from(p: ProtocolArg) -> Protocol {
        match p {
            ProtocolArg::Uring => Protocol::URing,
            ProtocolArg::Mring => Protocol::MRing,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the protocol cores in the deterministic simulator with faults and check every invariant.
    Sim {
        #[arg(long, value_enum, default_value = "uring")]
        protocol: ProtocolArg,
        /// How many seeds to run, starting at --first-seed.
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// Run only this seed (also read from RINGSMR_SEED) and print its fault plan.
        #[arg(long)]
        seed: Option<u64>,
        /// Acceptor failures tolerated (2f+1 acceptors).
        #[arg(long, default_value_t = 1)]
        f: usize,
        /// Print one line per seed, not only failures.
        #[arg(long)]
        verbose: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        // The reader of our output went away (`ringsmr sim ... | head`): nothing left to say.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringsmr: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Sim { protocol, seeds, first_seed, seed, f, verbose } => {
            if f == 0 || f > 3 {
                bail!("--f must be 1, 2 or 3 (the simulator runs 2f+1 acceptors), got {f}");
            }
            let single = seed.or_else(sim::replay_seed);
            let seeds: Vec<u64> = match single {
                Some(s) => vec![s],
                None => (first_seed..first_seed + seeds).collect(),
            };
            let started = Instant::now();
            let mut out = io::stdout().lock();
            let mut failed = Vec::new();
            let mut coverage = sim::Coverage::default();
            for &s in &seeds {
                let report = sim::run(SimConfig::for_seed(protocol.into(), f, s));
                coverage.add(&report);
                if verbose || single.is_some() || !report.passed() {
                    writeln!(out, "{}", report.summary())?;
                }
                if single.is_some() {
                    writeln!(out, "  config: {:?}", report.config)?;
                    writeln!(out, "  faults: {:?}", report.plan)?;
                    for p in &report.processes {
                        writeln!(out, "  {p:?}")?;
                    }
                }
                for v in &report.violations {
                    writeln!(out, "  {v}")?;
                }
                if !report.passed() {
                    failed.push(s);
                }
            }
            writeln!(
                out,
                "{} seeds, {} failed, {:.1} s{}",
                seeds.len(),
                failed.len(),
                started.elapsed().as_secs_f64(),
                if failed.is_empty() {
                    String::new()
                } else {
                    format!(" — failing seeds: {failed:?}")
                }
            )?;
            if single.is_none() {
                writeln!(out, "exercised, {coverage}")?;
            }
            Ok(if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

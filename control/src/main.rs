//! `egressfwd`: the egress forwarding appliance (contract section 2).

mod commands;
mod metrics;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "egressfwd",
    version,
    about = "Userspace egress forwarding appliance on DPDK"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a topology file.
    Check { topology: PathBuf },
    /// Print the decision for flows, one JSON object a line.
    Explain(commands::explain::ExplainArgs),
    /// Run the appliance.
    Run(run::RunArgs),
    /// Print the compiled decision table of one server.
    Table {
        #[arg(long)]
        topology: PathBuf,
        #[arg(long)]
        server: String,
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Why a command failed, which decides the exit status (contract section 2).
#[derive(Debug)]
pub enum Failure {
    /// Bad usage, bad configuration or an invalid topology: exit 2. Already printed.
    Invalid,
    /// Anything else: exit 1, with this message.
    Other(String),
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(err: E) -> Self {
        Failure::Other(err.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let result = match cli.command {
        Command::Check { topology } => commands::check(&topology),
        Command::Explain(args) => commands::explain::run(&args),
        Command::Table {
            topology,
            server,
            json,
        } => commands::table(&topology, &server, json),
        Command::Run(args) => run::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Invalid) => ExitCode::from(2),
        Err(Failure::Other(message)) => {
            eprintln!("egressfwd: {message}");
            ExitCode::from(1)
        }
    }
}

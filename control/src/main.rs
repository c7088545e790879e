//! `egressfwd`: the egress forwarding appliance (contract section 2).

// Only dpdk-sys may hold `unsafe` (docs/architecture.md).
#![forbid(unsafe_code)]

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
    /// Validate a topology file, or an appliance config and its topology (`--config`).
    Check {
        #[arg(required_unless_present = "config")]
        topology: Option<PathBuf>,
        /// Check this config, the topology it names, and that its server is in it.
        #[arg(long, conflicts_with = "topology")]
        config: Option<PathBuf>,
    },
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

/// Whether the CPU lacks a feature this build was compiled to use (`.cargo/config.toml`).
/// Read from CPUID itself: `is_x86_feature_detected!` answers yes, without looking, for every
/// feature the build enables. Plain integer code only: with those features on, the compiler
/// encodes even vector moves in instructions an older CPU does not have.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn cpu_lacks_build_features() -> bool {
    use std::arch::x86_64::__cpuid_count;
    let leaf1 = __cpuid_count(1, 0).ecx;
    let leaf7 = __cpuid_count(7, 0).ebx;
    let extended = __cpuid_count(0x8000_0001, 0).ecx;
    let lacks = |built_for: bool, register: u32, bit: u32| built_for && register & (1 << bit) == 0;
    lacks(cfg!(target_feature = "avx2"), leaf7, 5)
        | lacks(cfg!(target_feature = "bmi1"), leaf7, 3)
        | lacks(cfg!(target_feature = "bmi2"), leaf7, 8)
        | lacks(cfg!(target_feature = "fma"), leaf1, 12)
        | lacks(cfg!(target_feature = "movbe"), leaf1, 22)
        | lacks(cfg!(target_feature = "lzcnt"), extended, 5)
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_lacks_build_features() -> bool {
    false
}

/// Kept to the CPU check and a call: the rest of the program may use the instructions the
/// check is about, so none of it runs before the check.
fn main() -> ExitCode {
    if cpu_lacks_build_features() {
        eprintln!(
            "egressfwd: this build needs an x86-64-v3 CPU (AVX2, BMI1, BMI2, FMA, LZCNT, MOVBE) \
             and this CPU lacks some of these; build it for this CPU with \
             RUSTFLAGS=\"-C target-cpu=x86-64\" cargo build --release -p egressfwd"
        );
        return ExitCode::from(1);
    }
    run_cli()
}

#[inline(never)]
fn run_cli() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let result = match cli.command {
        Command::Check {
            topology: Some(topology),
            ..
        } => commands::check(&topology),
        Command::Check {
            config: Some(config),
            ..
        } => commands::check_config(&config),
        Command::Check { .. } => unreachable!("clap requires a topology or --config"),
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

//! `egressfwd`: the egress forwarding appliance (contract section 2).

// Only dpdk-sys may hold `unsafe` (docs/architecture.md).
#![forbid(unsafe_code)]

mod commands;
mod load;
mod metrics;
mod run;
mod totals;

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
    /// How log lines are written to standard error: `text` for people, `json` (one object a
    /// line) for log shippers. DPDK's own lines go the same way.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
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
    /// What replacing a topology with another would change for one server: the addresses
    /// whose tier or targets change, the share of new flows that would move, the port slices
    /// that change owner.
    Diff(commands::diff::DiffArgs),
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
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), as the package installs it.
    #[command(hide = true)]
    Manpage,
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

/// Logs to standard error, filtered by `RUST_LOG` (default `info`), in colour only on a
/// terminal: under systemd or in a pipe, escape codes would end up in the journal.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

#[inline(never)]
fn run_cli() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
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
        Command::Diff(args) => commands::diff::run(&args),
        Command::Table {
            topology,
            server,
            json,
        } => commands::table(&topology, &server, json),
        Command::Run(args) => run::run(&args),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "egressfwd", &mut std::io::stdout());
            Ok(())
        }
        Command::Manpage => clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
            .render(&mut std::io::stdout())
            .map_err(Failure::from),
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

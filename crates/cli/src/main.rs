//! The `netfence` binary: argument parsing, input loading and rendering. No policy logic
//! lives here; it calls the library crates and prints what they return.

mod examples;
mod inputs;
mod render;

use clap::{Args, Parser, Subcommand, ValueEnum};
use netfence_engine::{connlist, default_ports, Matrix, ProbePort};
use std::path::PathBuf;
use std::process::ExitCode;

/// netfence: what your network policies really allow.
#[derive(Parser)]
#[command(name = "netfence", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Inputs {
    /// A manifest file, a directory (recursive *.yaml|*.yml|*.json) or `-` for stdin; repeatable.
    #[arg(short = 'f', long = "file", required = true, value_name = "PATH")]
    files: Vec<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Can A reach B on a port? Explains both directions. Exit 0 when allowed, 1 when denied.
    Query {
        #[command(flatten)]
        inputs: Inputs,
        /// Source: `namespace/pod`, `pod` (namespace `default`), `namespace/workload`, or an IP.
        #[arg(long)]
        from: String,
        /// Destination, in the same forms as --from.
        #[arg(long)]
        to: String,
        /// `PROTO/PORT`, e.g. TCP/80 or UDP/53.
        #[arg(long)]
        port: ProbePort,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = QueryFormat::Text)]
        output: QueryFormat,
    },
    /// Pod-to-pod reachability for each port.
    Matrix {
        #[command(flatten)]
        inputs: Inputs,
        /// Comma-separated `PROTO/PORT` list; default: every port a pod declares or a policy names.
        #[arg(long, value_delimiter = ',')]
        ports: Vec<ProbePort>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = MatrixFormat::Grid)]
        output: MatrixFormat,
    },
    /// Allowed connections by workload and external range (netpol-analyzer style).
    List {
        #[command(flatten)]
        inputs: Inputs,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = ListFormat::Txt)]
        output: ListFormat,
    },
    /// Run on the built-in example cluster (the EKS best-practices guide's examples).
    Demo {
        /// Write the example manifests to this directory instead of analysing them.
        #[arg(long, value_name = "DIR")]
        export: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum QueryFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum MatrixFormat {
    Grid,
    Json,
    Csv,
}

#[derive(Clone, Copy, ValueEnum)]
enum ListFormat {
    Txt,
    Json,
    Csv,
    Md,
    Dot,
}

/// A failure that ends the command, with its exit code.
pub struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// Bad input or usage: exit 2.
    pub fn input(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("{}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn run(cli: Cli) -> Result<u8, Failure> {
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Query {
            inputs,
            from,
            to,
            port,
            output,
        } => {
            let engine = inputs::load(&inputs.files)?;
            let src = inputs::endpoint(&engine, &from, "--from")?;
            let dst = inputs::endpoint(&engine, &to, "--to")?;
            let verdict = engine.explain(src, dst, port.protocol, port.port);
            match output {
                QueryFormat::Text => {
                    render::query_text(&mut out, &engine, src, dst, port, &verdict)
                }
                QueryFormat::Json => {
                    render::query_json(&mut out, &engine, src, dst, port, &verdict)
                }
            }
            .map_err(io_failure)?;
            Ok(if verdict.allowed { 0 } else { 1 })
        }
        Command::Matrix {
            inputs,
            ports,
            output,
        } => {
            let engine = inputs::load(&inputs.files)?;
            let ports = if ports.is_empty() {
                default_ports(engine.inventory())
            } else {
                ports
            };
            let matrix = Matrix::compute(&engine, &ports);
            match output {
                MatrixFormat::Grid => render::matrix_grid(&mut out, &matrix),
                MatrixFormat::Json => render::matrix_json(&mut out, &matrix),
                MatrixFormat::Csv => render::matrix_csv(&mut out, &matrix),
            }
            .map_err(io_failure)?;
            Ok(0)
        }
        Command::List { inputs, output } => {
            let engine = inputs::load(&inputs.files)?;
            let list = connlist(&engine);
            match output {
                ListFormat::Txt => render::list_txt(&mut out, &list),
                ListFormat::Json => render::list_json(&mut out, &list),
                ListFormat::Csv => render::list_csv(&mut out, &list),
                ListFormat::Md => render::list_md(&mut out, &list),
                ListFormat::Dot => render::list_dot(&mut out, &list),
            }
            .map_err(io_failure)?;
            Ok(0)
        }
        Command::Demo { export } => {
            if let Some(dir) = export {
                examples::export(&dir)
                    .map_err(|e| Failure::input(format!("{}: {e}", dir.display())))?;
                return Ok(0);
            }
            let engine = examples::engine()?;
            render::demo(&mut out, &engine).map_err(io_failure)?;
            Ok(0)
        }
    }
}

fn io_failure(error: std::io::Error) -> Failure {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        // `netfence … | head` is not an error.
        return Failure {
            code: 0,
            message: String::new(),
        };
    }
    Failure {
        code: 1,
        message: format!("error writing output: {error}"),
    }
}

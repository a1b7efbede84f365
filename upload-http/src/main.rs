//! The fastupload service binary: settings, logging, then [`upload_http::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Fast streaming file uploads and CPU work that never blocks requests.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// A TOML settings file (between the built-in defaults and UPLOAD__SECTION__KEY variables).
    #[arg(long, env = "UPLOAD_CONFIG")]
    config: Option<PathBuf>,
    /// Print the effective settings as TOML and exit.
    #[arg(long)]
    print_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Exit 0 if the service (as the settings describe it) answers `PATH` with 200: a
    /// container health check that needs no other tool.
    Healthcheck {
        /// `/readyz` (storage usable) or `/healthz` (process up).
        #[arg(long, default_value = "/readyz")]
        path: String,
        /// How long to wait for the answer.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Print a new random token and the settings line that admits it (only its SHA-256).
    New {
        /// Who holds it: recorded as the owner of what it uploads.
        #[arg(long)]
        name: String,
        /// Comma-separated: read, write, delete, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (log_writer, flush_logs) = match upload_http::BackgroundWriter::spawn(std::io::stderr()) {
        Ok(writer) => writer,
        Err(e) => {
            eprintln!("error: cannot start logging: {e}");
            return ExitCode::FAILURE;
        }
    };
    upload_http::write_access_log_to(log_writer.clone());
    let logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
            .target(env_logger::Target::Pipe(Box::new(log_writer)))
            .build();
    log::set_max_level(logger.filter());
    if let Err(e) = log::set_boxed_logger(Box::new(upload_http::ClientNoise::new(logger))) {
        eprintln!("error: cannot start logging: {e}");
        return ExitCode::FAILURE;
    }
    let result = serve(cli);
    drop(flush_logs); // every log line out before the error
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line naming what is wrong: a bad setting is not a crash, no backtrace.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(cli: Cli) -> anyhow::Result<()> {
    // Needs no settings: it makes a line for them.
    if let Some(Command::Token(TokenCommand::New { name, scopes })) = &cli.command {
        let scopes = upload_http::Scopes::parse(scopes.iter().map(String::as_str))
            .map_err(anyhow::Error::msg)?;
        print!("{}", upload_http::NewToken::generate(name, scopes)?.instructions());
        return Ok(());
    }
    let raw = upload_http::RawSettings::load(cli.config.as_deref(), std::env::vars())?;
    if cli.print_config {
        print!("{}", raw.to_toml()?);
        return Ok(());
    }
    let settings = raw.validate()?;
    if let Some(Command::Healthcheck { path, timeout }) = cli.command {
        let status = upload_http::probe(&settings.server, &path, timeout)?;
        anyhow::ensure!(status == 200, "{path} answered {status}");
        return Ok(());
    }
    actix_web::rt::System::new().block_on(upload_http::run(settings))?;
    Ok(())
}

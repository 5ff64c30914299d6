//! The `warden` binary: parse the command line, install the crypto provider, dispatch.

use std::io::Read;
use std::process::ExitCode;

use clap::Parser;
use warden::cli::{Cli, Command};

fn main() -> ExitCode {
    warden::install_crypto_provider();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warden: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let state_dir = warden::paths::state_dir(cli.state_dir.as_deref());
    match cli.command {
        Command::Serve(args) => {
            let _log = warden::cli::logging::init(&state_dir, args.log_stderr)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(warden::serve::run(cli.config.as_deref(), &state_dir, args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::HashSecret => {
            let mut secret = String::new();
            std::io::stdin().read_to_string(&mut secret)?;
            let secret = secret.trim_end_matches(['\n', '\r']);
            anyhow::ensure!(
                !secret.is_empty(),
                "no secret on stdin: run `printf %s SECRET | warden hash-secret`"
            );
            let hash = warden::security::hash::SecretHash::create(
                secret,
                warden::security::hash::DEFAULT_ITERATIONS,
            );
            println!("{}", hash.encode());
            Ok(ExitCode::SUCCESS)
        }
    }
}

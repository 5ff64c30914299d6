//! The `warden` binary: parse the command line, install the crypto provider, dispatch.

use std::io::Read;
use std::process::ExitCode;

use clap::Parser;
use warden::cli::client::ClientArgs;
use warden::cli::{Cli, Command};

fn agent_args(m: &warden::cli::ModelArgs, scopes: Option<String>, json: bool) -> warden::cli::run::AgentArgs {
    warden::cli::run::AgentArgs {
        model: m.model.clone(),
        lm_base_url: m.lm_base_url.clone(),
        scopes,
        max_iters: m.max_iters,
        otlp_endpoint: m.otlp_endpoint.clone(),
        json,
        yes: false,
        login: Default::default(),
        program: Default::default(),
        record: false,
    }
}

/// Runs a client command on its own runtime, logging to the state dir (never the terminal).
fn client_command(
    state_dir: &std::path::Path,
    log: warden::config::LogConfig,
    f: impl FnOnce(&tokio::runtime::Runtime) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    let _log = warden::cli::logging::init(state_dir, false, log)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let code = f(&rt);
    // Do not wait for lingering connection tasks; the answer is already printed.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}

// mimalloc: the servers allocate many small, short-lived buffers per request (JSON, HTTP/2
// frames); glibc malloc was ~8% of server CPU in profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Everything Warden writes is private: keys, client secrets, the customer database, the
    // audit trail, logs and recordings. With this mask every file it creates is 0600 and
    // every directory 0700, whichever library creates it (SQLite, the log appender).
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    warden::install_crypto_provider();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warden: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The whole cause chain on one line, each cause once. Warden's error types quote their
/// cause in their message and do not also report it as `source()` (checked in
/// `cli::tests::error_types_quote_their_os_error_once`); a cause already quoted is still
/// skipped here for any type that does both.
fn describe(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let state_dir = warden::paths::state_dir(cli.state_dir.as_deref());
    // The `[log]` settings, read before any command opens the log (a config that does not
    // load leaves the defaults; the command itself then reports why it does not load).
    let log = warden::config::Config::load(cli.config.as_deref()).map(|(c, _)| c.log).unwrap_or_default();
    warden::paths::ensure_private_dir(&state_dir)
        .map_err(|e| anyhow::anyhow!("cannot create the state directory {}: {e}", state_dir.display()))?;
    match cli.command {
        Command::Serve(args) => {
            let log_name = args.instance.map_or_else(|| "warden.log".to_string(), |n| format!("warden-{n}.log"));
            let _log = warden::cli::logging::init_named(&state_dir, &log_name, args.log_stderr, log)?;
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(warden::cli::serve::run(cli.config.as_deref(), &state_dir, args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Token(a) => client_command(&state_dir, log, |rt| {
            rt.block_on(warden::cli::client::token(ClientArgs {
                config: cli.config.as_deref(),
                state_dir: &state_dir,
                scopes: a.scopes.as_deref(),
                json: a.json,
                adhoc: a.adhoc.clone(),
                login: a.login.clone(),
            }))
        }),
        Command::Tools(a) => client_command(&state_dir, log, |rt| {
            rt.block_on(warden::cli::client::tools(
                ClientArgs {
                    config: cli.config.as_deref(),
                    state_dir: &state_dir,
                    scopes: a.scopes.as_deref(),
                    json: a.json,
                    adhoc: a.adhoc.clone(),
                    login: a.login.clone(),
                },
                a.approve,
            ))
        }),
        Command::Call(a) => client_command(&state_dir, log, |rt| {
            let args = ClientArgs {
                config: cli.config.as_deref(),
                state_dir: &state_dir,
                scopes: a.scopes.as_deref(),
                json: a.json,
                adhoc: a.adhoc.clone(),
                login: a.login.clone(),
            };
            rt.block_on(warden::cli::client::call(args, &a.tool, &a.args, !a.no_precheck, a.yes))
        }),
        Command::Servers(a) => client_command(&state_dir, log, |rt| {
            let args = ClientArgs {
                config: cli.config.as_deref(),
                state_dir: &state_dir,
                scopes: None,
                json: a.json,
                adhoc: a.adhoc.clone(),
                login: a.login.clone(),
            };
            rt.block_on(warden::cli::client::servers(args))
        }),
        Command::Run(a) => client_command(&state_dir, log, |rt| {
            let args = warden::cli::run::AgentArgs {
                yes: a.yes,
                login: a.login.clone(),
                program: a.program.args(),
                record: a.record,
                ..agent_args(&a.model, a.scopes.clone(), a.json)
            };
            rt.block_on(warden::cli::run::run(cli.config.as_deref(), &state_dir, &a.scenarios, args))
        }),
        Command::Demo(a) => {
            let explicit_state = cli.state_dir.clone();
            client_command(&state_dir, log, |rt| {
                let args = warden::cli::run::AgentArgs {
                    program: a.program.args(),
                    record: a.record,
                    ..agent_args(&a.model, None, a.json)
                };
                if a.headless {
                    rt.block_on(warden::cli::run::demo_headless(explicit_state.as_deref(), &state_dir, args))
                } else {
                    rt.block_on(warden::cli::run::demo(explicit_state.as_deref(), &state_dir, args, a.theme.as_deref()))
                }
            })
        }
        Command::Console(a) => client_command(&state_dir, log, |rt| {
            // The console is interactive: it has no JSON output.
            let args = warden::cli::run::AgentArgs {
                login: a.login.clone(),
                program: a.program.args(),
                ..agent_args(&a.model, a.scopes.clone(), false)
            };
            rt.block_on(warden::cli::run::console(
                cli.config.as_deref(),
                &state_dir,
                args,
                a.theme.as_deref(),
                &a.adhoc,
            ))
        }),
        Command::Replay(a) if a.check => client_command(&state_dir, log, |rt| {
            let agent = warden::cli::run::AgentArgs {
                yes: a.yes,
                login: a.login.clone(),
                program: a.program.args(),
                ..agent_args(&a.model, None, a.json)
            };
            rt.block_on(warden::cli::replay_check::run(warden::cli::replay_check::CheckArgs {
                config: cli.config.as_deref(),
                state_dir: &state_dir,
                file: a.file.clone(),
                scopes: a.scopes.clone(),
                json: a.json,
                agent,
            }))
        }),
        Command::Replay(a) if a.program.program.is_some() => {
            eprintln!("warden: --program applies to `warden replay --check` (a playback shows what was recorded)");
            Ok(ExitCode::from(2))
        }
        Command::Validate(a) => client_command(&state_dir, log, |rt| {
            rt.block_on(warden::cli::validate::run(warden::cli::validate::ValidateArgs {
                config: cli.config.as_deref(),
                state_dir: &state_dir,
                program: a.program.clone(),
                key_file: a.key_file.clone(),
                scopes: a.scopes.clone(),
                json: a.json,
                login: a.login.clone(),
            }))
        }),
        Command::Replay(a) => client_command(&state_dir, log, |rt| {
            let (config, _) = warden::config::Config::load(cli.config.as_deref())?;
            let (theme, keymap) = warden::cli::run::look(&config, a.theme.as_deref())?;
            rt.block_on(warden::tui::run_replay(&a.file, a.speed, theme, keymap, &state_dir))?;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Audit(warden::cli::AuditCommand::Verify { path, key }) => {
            let key = match key {
                Some(k) => k,
                None => {
                    let (config, _) = warden::config::Config::load(cli.config.as_deref())?;
                    config.audit.unwrap_or_default().checkpoint_key_path(&state_dir)
                }
            };
            warden::cli::audit::run_verify(&state_dir, path.as_deref(), &key)
        }
        Command::Audit(warden::cli::AuditCommand::Tail {
            server,
            instance,
            follow,
            json,
            run,
            tool,
            outcome,
            lines,
        }) => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let args = warden::cli::audit::TailArgs { server, instance, follow, json, run, tool, outcome, lines };
            rt.block_on(warden::cli::audit::run_tail(&state_dir, args))
        }
        Command::Logout(a) => client_command(&state_dir, log, |rt| {
            rt.block_on(warden::cli::client::logout(cli.config.as_deref(), &state_dir, a.server.as_deref()))
        }),
        Command::HashSecret => {
            let mut secret = String::new();
            std::io::stdin().read_to_string(&mut secret)?;
            let secret = secret.trim_end_matches(['\n', '\r']);
            anyhow::ensure!(!secret.is_empty(), "no secret on stdin: run `printf %s SECRET | warden hash-secret`");
            let hash = warden::security::hash::SecretHash::create(secret, warden::security::hash::DEFAULT_ITERATIONS);
            println!("{}", hash.encode());
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect(a) => warden::cli::inspect::run(&a),
        Command::Keygen(a) => warden::cli::inspect::keygen(&a),
        Command::Bench(a) => {
            client_command(&state_dir, log, |rt| rt.block_on(warden::cli::bench::run(cli.config.as_deref(), a)))
        }
        Command::Optimize(a) => client_command(&state_dir, log, |rt| {
            rt.block_on(warden::cli::optimize::run(cli.config.as_deref(), &state_dir, a))
        }),
    }
}

//! `warden optimize`: the seeds' optimization loop from the command line. It opens a
//! session like `warden run` (or starts the demo's servers with `--demo`), sends the
//! session core one `Optimize` command, shows its progress with a progress bar, and prints
//! the before/after table per example and in total, the learnt constraints, and where the
//! validated program went.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::agent::teleprompt::bootstrap::BootstrapFewShot;
use crate::agent::teleprompt::labeled::LabeledFewShot;
use crate::agent::teleprompt::metric::DEFAULT_PENALTY;
use crate::agent::teleprompt::random_search::RandomSearch;
use crate::agent::teleprompt::trainset;
use crate::config::Config;
use crate::session::command::Command;
use crate::session::optimize::{OptimizeJob, Optimizer, OutFormat};
use crate::session::{Session, SessionOptions};
use crate::types::event::{CallOutcome, EventKind};
use crate::types::optimize::OptimizeSummary;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptimizerName {
    Labeled,
    Bootstrap,
    RandomSearch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Sealed,
    DspyJson,
}

#[derive(Debug, Clone, Args)]
pub struct OptimizeArgs {
    /// Training examples (TOML, [[example]] tables). Default: the built-in config/trainset.toml.
    #[arg(long, value_name = "FILE")]
    pub trainset: Option<PathBuf>,
    /// Examples to score on (default: the trainset).
    #[arg(long, value_name = "FILE")]
    pub valset: Option<PathBuf>,
    /// labeled (LabeledFewShot), bootstrap (BootstrapFewShot) or random-search
    /// (BootstrapFewShotWithRandomSearch).
    #[arg(long, value_enum, default_value = "bootstrap")]
    pub optimizer: OptimizerName,
    /// The grant to optimize under, space-separated (default: the config's or the client's).
    #[arg(long, value_name = "\"A B\"")]
    pub scopes: Option<String>,
    /// Audit logs and session recordings from production (a directory or a .jsonl file):
    /// their denials become learnt constraints and training examples.
    #[arg(long, value_name = "DIR")]
    pub feedback: Option<PathBuf>,
    /// Where to write the compiled program (without it: report only).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// sealed (program + security configuration, AES-256-GCM) or dspy-json (loads in Python).
    #[arg(long, value_enum, default_value = "sealed")]
    pub format: Format,
    /// The sealing key (created, 0600, when missing). Default: STATE/keys/program.key.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Start from this program (sealed or DSPy JSON) instead of the plain ReAct.
    #[arg(long, value_name = "FILE")]
    pub program: Option<PathBuf>,
    /// Score lost per security violation (the seeds': 0.1).
    #[arg(long, default_value_t = DEFAULT_PENALTY)]
    pub penalty: f64,
    /// A run becomes a demo only at this score or above (DSPy: any non-zero score when
    /// unset; Warden's default keeps only clean, complete runs).
    #[arg(long, default_value_t = 1.0)]
    pub metric_threshold: f64,
    /// LabeledFewShot's k.
    #[arg(long, default_value_t = 16)]
    pub k: usize,
    /// BootstrapFewShot: traces kept per predictor.
    #[arg(long, default_value_t = 4)]
    pub max_bootstrapped_demos: usize,
    /// BootstrapFewShot: demos per predictor in all, traces plus labeled examples.
    #[arg(long, default_value_t = 16)]
    pub max_labeled_demos: usize,
    /// BootstrapFewShot: attempts per example.
    #[arg(long, default_value_t = 1)]
    pub max_rounds: usize,
    /// Stop after this many failed runs (the model failing, usually).
    #[arg(long, default_value_t = 10)]
    pub max_errors: usize,
    /// Random search: candidate programs besides the three fixed ones.
    #[arg(long, default_value_t = 16)]
    pub candidates: usize,
    /// Random search: stop at the first candidate scoring this (0–1).
    #[arg(long)]
    pub stop_at_score: Option<f64>,
    /// Runs at a time while evaluating.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Start the demo's issuer and service on loopback (a temporary state) and optimize
    /// against them: no configuration, no network.
    #[arg(long)]
    pub demo: bool,
    /// Print the summary as one JSON object (no progress bar, no table).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub login: super::LoginArgs,
    #[command(flatten)]
    pub model: super::ModelArgs,
}

/// Exit code when the compiled program did not validate (nothing was written).
pub const EXIT_INVALID: u8 = 1;

impl OptimizeArgs {
    fn optimizer(&self) -> Optimizer {
        let bootstrap = BootstrapFewShot {
            metric_threshold: Some(self.metric_threshold),
            max_bootstrapped_demos: self.max_bootstrapped_demos,
            max_labeled_demos: self.max_labeled_demos,
            max_rounds: self.max_rounds,
            max_errors: self.max_errors,
        };
        match self.optimizer {
            OptimizerName::Labeled => Optimizer::Labeled(LabeledFewShot { k: self.k }),
            OptimizerName::Bootstrap => Optimizer::Bootstrap(bootstrap),
            OptimizerName::RandomSearch => Optimizer::RandomSearch(RandomSearch {
                bootstrap,
                num_candidate_programs: self.candidates,
                stop_at_score: self.stop_at_score,
                concurrency: self.concurrency,
            }),
        }
    }
}

pub async fn run(config_path: Option<&Path>, state_dir: &Path, args: OptimizeArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.penalty) || !(0.0..=1.0).contains(&args.metric_threshold) {
        eprintln!("warden: --penalty and --metric-threshold take a number from 0 to 1");
        return Ok(ExitCode::from(2));
    }
    let trainset = match &args.trainset {
        Some(p) => trainset::load(p)?,
        None => trainset::parse(trainset::DEFAULT_TRAINSET, "built-in config/trainset.toml")?,
    };
    let valset = args.valset.as_deref().map(trainset::load).transpose()?;
    let start = args
        .program
        .as_deref()
        .map(|p| crate::agent::program::load_file(p, args.key_file.as_deref()))
        .transpose()?
        .map(|f| f.program);
    let out = args.out.clone().map(|path| {
        let format = match args.format {
            Format::Sealed => OutFormat::Sealed {
                key_file: args.key_file.clone().unwrap_or_else(|| state_dir.join("keys").join("program.key")),
            },
            Format::DspyJson => OutFormat::DspyJson,
        };
        (path, format)
    });
    let job = OptimizeJob {
        trainset,
        valset,
        optimizer: args.optimizer(),
        penalty: args.penalty,
        concurrency: args.concurrency.max(1),
        feedback: args.feedback.clone(),
        start,
        out,
    };
    if args.demo {
        let servers = super::run::DemoServers::start(None, None).await?;
        let code = optimize_on(&servers.client, state_dir, &args, job).await;
        servers.running.shutdown().await;
        return code;
    }
    let (mut config, _) = Config::load(config_path)?;
    if let Err(msg) = args.login.apply(&mut config, state_dir) {
        eprintln!("warden: {msg}");
        return Ok(ExitCode::from(2));
    }
    if config.servers.is_empty() {
        eprintln!(
            "warden: no MCP servers are configured to optimize against: add --demo (the embedded issuer and service on loopback), or start `warden serve` and pass the client config it wrote with --config"
        );
        return Ok(ExitCode::from(2));
    }
    optimize_on(&config, state_dir, &args, job).await
}

async fn optimize_on(
    config: &Config,
    state_dir: &Path,
    args: &OptimizeArgs,
    job: OptimizeJob,
) -> anyhow::Result<ExitCode> {
    let opts = SessionOptions {
        model: args.model.model.clone(),
        lm_base_url: args.model.lm_base_url.clone(),
        scopes: args.scopes.clone(),
        max_iters: args.model.max_iters,
        otlp_endpoint: args.model.otlp_endpoint.clone(),
        ..SessionOptions::default()
    };
    let session = Session::open(config, state_dir, opts).await?;
    let model = session.info().model;
    let mut events = session.events().subscribe(1 << 16);
    let core = session.start(tokio_util::sync::CancellationToken::new());
    let examples = job.valset.as_ref().map_or(job.trainset.len(), Vec::len);
    let bar = if args.json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(0)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {prefix:.bold} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix("optimizing");
    anyhow::ensure!(core.send(Command::Optimize(Box::new(job))).await, "the session core stopped unexpectedly");
    let (mut denials, mut anomalies) = (0u64, 0u64);
    let result = loop {
        let Some(e) = events.recv().await else {
            break Err(anyhow::anyhow!("the session core stopped before the optimization finished"));
        };
        match e.kind {
            EventKind::OptimizeProgress { phase, done, total } => {
                bar.set_length(total);
                bar.set_position(done);
                bar.set_message(format!("{phase} · {denials} denied, {anomalies} anomalies"));
            }
            EventKind::ToolResult { outcome: CallOutcome::Denied { .. }, .. } => denials += 1,
            EventKind::Anomaly { .. } => anomalies += 1,
            EventKind::OptimizeFinished { summary, error } => {
                bar.finish_and_clear();
                break match (summary, error) {
                    (Some(s), _) => Ok(*s),
                    (None, Some(e)) => Err(anyhow::anyhow!("optimization failed: {e}")),
                    (None, None) => Err(anyhow::anyhow!("optimization ended without a result")),
                };
            }
            _ => {}
        }
    };
    core.shutdown().await;
    let summary = result?;
    if args.json {
        outln!("{}", serde_json::to_string(&summary).context("cannot print the summary")?);
    } else {
        outln!("{}", render(&summary, &model, examples));
    }
    Ok(if summary.findings.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_INVALID) })
}

/// The before/after table, the constraints, and what was written.
pub fn render(s: &OptimizeSummary, model: &str, examples: usize) -> String {
    let mut out = format!(
        "{} · model {model} · {examples} examples · {} demos · {} runs in {:.1} s\n\n",
        s.optimizer,
        s.demos,
        s.runs,
        s.elapsed_ms / 1e3
    );
    out.push_str(&format!("{:>3}  {:<44}  {:>17}  {:>17}\n", "", "", "before", "after"));
    out.push_str(&format!(
        "{:>3}  {:<44}  {:>5} {:>4} {:>6}  {:>5} {:>4} {:>6}\n",
        "#", "request", "base", "viol", "final", "base", "viol", "final"
    ));
    for (i, r) in s.rows.iter().enumerate() {
        let marker = if r.after.final_score > r.before.final_score + 1e-9 {
            "↑"
        } else if r.after.final_score + 1e-9 < r.before.final_score {
            "↓"
        } else {
            " "
        };
        out.push_str(&format!(
            "{:>3}  {:<44}  {:>5.2} {:>4} {:>6.2}  {:>5.2} {:>4} {:>6.2} {marker}\n",
            i + 1,
            crate::tui::panes::clip(&r.request, 44),
            r.before.base,
            r.before.violations,
            r.before.final_score,
            r.after.base,
            r.after.violations,
            r.after.final_score
        ));
    }
    out.push_str(&format!(
        "{:>3}  {:<44}  {:>5.2} {:>4} {:>6.2}  {:>5.2} {:>4} {:>6.2}\n",
        "",
        "total (mean score, sum of violations)",
        s.before.base,
        s.before.violations,
        s.before.final_score,
        s.after.base,
        s.after.violations,
        s.after.final_score
    ));
    let lowered: Vec<(usize, &str)> = s
        .rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.after.final_score < 1.0)
        .map(|(i, r)| (i + 1, r.reason.as_str()))
        .collect();
    if !lowered.is_empty() {
        out.push_str("\nbelow 1.00 after:\n");
        for (i, reason) in lowered {
            out.push_str(&format!("  {i:>2}  {reason}\n"));
        }
    }
    if !s.candidates.is_empty() {
        let list: Vec<String> = s.candidates.iter().map(|(seed, score)| format!("{seed}: {score:.2}")).collect();
        out.push_str(&format!("\ncandidates (seed: score): {}\n", list.join(", ")));
    }
    if s.constraints.is_empty() {
        out.push_str("\nlearnt constraints: none\n");
    } else {
        out.push_str("\nlearnt constraints:\n");
        for c in &s.constraints {
            out.push_str(&format!("  {c}\n"));
        }
    }
    if !s.kept.is_empty() {
        out.push_str("also seen, kept in the security configuration (not binding under this grant):\n");
        for c in &s.kept {
            out.push_str(&format!("  - {c}\n"));
        }
    }
    match (&s.out, s.findings.is_empty()) {
        (Some(path), true) => out.push_str(&format!("\nvalid; wrote {path} ({})", s.format)),
        (None, true) => out.push_str("\nvalid; nothing written (no --out)"),
        (_, false) => {
            out.push_str(&format!("\nNOT valid, nothing written ({} findings):", s.findings.len()));
            for f in &s.findings {
                out.push_str(&format!("\n  ✗ {f}"));
            }
        }
    }
    out
}

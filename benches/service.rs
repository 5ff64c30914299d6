//! Benchmark: authenticated `tools/call get_customer_info` over TLS on loopback, through
//! rmcp's real streamable-HTTP client, against the real `warden serve` binary running in
//! its own process (so its RSS is the server's alone).
//!
//! Run: `cargo bench --bench service`. Env: BENCH_CALLS_C1, BENCH_CALLS_C16 (calls),
//! BENCH_ROUNDS (concurrency-16 rounds, default 5), BENCH_DIRECT_CALLS=0 (serve every
//! request through rmcp's transport instead of the direct `tools/call` path).
//! Reports calls/s and latency percentiles at concurrency 1 and 16, and the server's RSS.
//! Concurrency 16 runs in rounds and reports each round and the median: on a shared
//! 2-core machine a single run swings by ±10% with the neighbours' load.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

// The same allocator as the `warden` binary, so the client side costs what Warden's does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn client(http: &reqwest::Client, mcp: &str, token: &str) -> RunningService<RoleClient, ()> {
    let config = StreamableHttpClientTransportConfig::with_uri(mcp.to_string()).auth_header(token.to_string());
    ().serve(StreamableHttpClientTransport::with_client(http.clone(), config)).await.expect("initialize")
}

fn https(state: &std::path::Path) -> reqwest::Client {
    warden::security::tls::mcp_http_client(
        &warden::security::tls::ClientTls { ca_file: Some(state.join("tls/ca.pem")), ca_only: true },
        Duration::from_secs(10),
    )
    .expect("client")
}

fn params() -> CallToolRequestParams {
    let args = serde_json::json!({"customer_id": "ABC123"});
    CallToolRequestParams::new("get_customer_info").with_arguments(args.as_object().cloned().unwrap_or_default())
}

async fn run(clients: &[Arc<RunningService<RoleClient, ()>>], total: usize) -> (f64, Vec<Duration>) {
    let per = total / clients.len();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in clients {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for _ in 0..per {
                let t = Instant::now();
                let r = c.call_tool(params()).await.expect("call");
                assert_eq!(r.is_error, Some(false));
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    (all.len() as f64 / secs, all)
}

fn report(label: &str, (rate, lat): &(f64, Vec<Duration>), cpu: (f64, f64)) {
    let n = lat.len() as f64;
    println!(
        "{label:>14}: {:>8.0} calls/s   p50 {:>7.3} ms   p99 {:>7.3} ms   max {:>7.3} ms   ({} calls; CPU per call: server {:.0} µs, client {:.0} µs)",
        rate,
        percentile(lat, 0.50).as_secs_f64() * 1e3,
        percentile(lat, 0.99).as_secs_f64() * 1e3,
        lat.last().map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0),
        lat.len(),
        cpu.0 / n * 1e6,
        cpu.1 / n * 1e6,
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing we use.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    warden::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("bench.toml");
    let mut text = warden::config::DEFAULT_CONFIG.replace("per_second = 50.0", "per_second = 1000000.0");
    text = text.replace("burst = 100", "burst = 1000000");
    if std::env::var("BENCH_DIRECT_CALLS").as_deref() == Ok("0") {
        text = text.replace("direct_calls = true", "direct_calls = false");
    }
    std::fs::write(&cfg, text).expect("write config");
    let mut server = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--config")
        .arg(&cfg)
        .args(["serve", "--issuer-addr", "127.0.0.1:0", "--mcp-addr", "127.0.0.1:0", "--state-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start warden serve");
    let mut line = String::new();
    BufReader::new(server.stdout.take().expect("stdout")).read_line(&mut line).expect("banner");
    let words: Vec<&str> = line.split_whitespace().collect();
    let (issuer, mcp) = (words[3].to_string(), words[5].to_string());
    let pid = server.id();

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let http = https(dir.path());
        let token: serde_json::Value = http
            .post(format!("{issuer}/token"))
            .basic_auth("support-agent", Some("demo-support-agent-secret-4f9c2e"))
            .form(&[("grant_type", "client_credentials"), ("resource", mcp.as_str())])
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("token json");
        let token = token["access_token"].as_str().expect("access_token").to_string();

        println!("warden service benchmark: tools/call get_customer_info over TLS (rmcp client, server pid {pid})");
        println!("server RSS at start: {:.1} MB", rss_kib(pid) as f64 / 1024.0);
        let one = vec![Arc::new(client(&http, &mcp, &token).await)];
        let _ = run(&one, 2_000).await; // warm-up
        let server_pid = pid.to_string();
        let cpu = || (cpu_secs(&server_pid), cpu_secs("self"));
        let before = cpu();
        let c1 = run(&one, env_usize("BENCH_CALLS_C1", 20_000)).await;
        let after = cpu();
        report("concurrency 1", &c1, (after.0 - before.0, after.1 - before.1));
        let mut many = Vec::new();
        // Sixteen MCP client sessions sharing one keep-alive pool (HTTP/1.1, as Warden's
        // sessions use), as one agent process making parallel calls would.
        // BENCH_SEPARATE_CONNECTIONS=1 gives each session its own pool.
        let separate = std::env::var_os("BENCH_SEPARATE_CONNECTIONS").is_some();
        for _ in 0..16 {
            let pool = if separate { https(dir.path()) } else { http.clone() };
            many.push(Arc::new(client(&pool, &mcp, &token).await));
        }
        let rounds = env_usize("BENCH_ROUNDS", 5).max(1);
        let per_round = env_usize("BENCH_CALLS_C16", 100_000) / rounds;
        let (mut rates, mut lat, mut cpu_used) = (Vec::new(), Vec::new(), (0.0, 0.0));
        for round in 1..=rounds {
            let before = cpu();
            let (rate, l) = run(&many, per_round).await;
            let after = cpu();
            println!("  concurrency 16, round {round}/{rounds}: {rate:>8.0} calls/s");
            rates.push(rate);
            lat.extend(l);
            cpu_used = (cpu_used.0 + after.0 - before.0, cpu_used.1 + after.1 - before.1);
        }
        rates.sort_by(f64::total_cmp);
        lat.sort();
        let c16 = (rates[rates.len() / 2], lat);
        report("concurrency 16", &c16, cpu_used);
        println!(
            "                (median of {rounds} rounds; slowest {:.0}, fastest {:.0} calls/s)",
            rates[0],
            rates[rates.len() - 1]
        );
        let total = 2_000 + c1.1.len() + c16.1.len();
        println!("server RSS after {total} calls: {:.1} MB", rss_kib(pid) as f64 / 1024.0);
    });
    let _ = server.kill();
    let _ = server.wait();
}

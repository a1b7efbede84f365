//! A fault run: uploads of every kind (multipart, raw `PUT`, tus) through one address (a load
//! balancer) while a schedule of shell commands kills and restarts what stands behind it; then
//! every acknowledged upload is downloaded and compared with what was sent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::Error;
use crate::report::{Latency, Recorder, failure_kind};

/// What to run.
#[derive(Clone, Debug, clap::Args)]
pub struct ChaosOptions {
    /// The service's base URL (e.g. the balancer's, http://127.0.0.1:8080).
    pub base_url: String,
    /// A phase after the first, fault-free one: its name and the shell command that starts it,
    /// run when the phase begins (e.g. "replica down=docker kill NAME"). Repeatable, in order.
    #[arg(long = "phase", value_name = "NAME=COMMAND", value_parser = parse_phase)]
    pub phases: Vec<(String, String)>,
    /// How long each phase lasts.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub phase_length: Duration,
    /// Uploads in flight at any time.
    #[arg(long, default_value_t = 6)]
    pub workers: usize,
    /// Bytes per upload.
    #[arg(long, default_value = "2MiB", value_parser = crate::parse_size)]
    pub size: u64,
    /// PATCH size of the tus uploads, a multiple of 64KiB.
    #[arg(long, default_value = "512KiB", value_parser = crate::parse_tus_chunk)]
    pub tus_chunk: u64,
}

fn parse_phase(text: &str) -> Result<(String, String), String> {
    let (name, command) = text.split_once('=').ok_or("expected NAME=COMMAND")?;
    Ok((name.trim().to_owned(), command.to_owned()))
}

/// One phase's figures.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    /// Its name (`steady` for the first).
    pub name: String,
    /// The command that began it, and whether it exited 0.
    pub command: Option<(String, bool)>,
    /// Uploads that ended in it.
    pub attempted: u64,
    /// Of those, acknowledged (2xx with the id).
    pub acknowledged: u64,
    /// Of those, refused or cut off: the client was told, by status or closed connection.
    pub failed: BTreeMap<String, u64>,
    /// tus uploads that lost a PATCH and finished from the offset the service kept.
    pub resumed: u64,
    /// Time to acknowledge, of the acknowledged.
    pub latency: Latency,
    /// From the command to the start of the first upload acknowledged after the phase's last
    /// failure ended (to that failure's end when none was); `None` when none failed.
    pub healed_after_ms: Option<f64>,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct ChaosReport {
    /// The target.
    pub base_url: String,
    /// Each phase.
    pub phases: Vec<PhaseReport>,
    /// Acknowledged uploads that do not download (must be 0).
    pub lost: u64,
    /// Acknowledged uploads that download other bytes (must be 0).
    pub corrupt: u64,
}

impl ChaosReport {
    /// The table.
    pub fn render(&self) -> String {
        let mut out = format!(
            "chaos run against {}\n{:<22} {:>9} {:>6} {:>7} {:>7} {:>9} {:>9} {:>9}  failures\n",
            self.base_url,
            "phase",
            "attempted",
            "acked",
            "failed",
            "resumed",
            "p50 ms",
            "p99 ms",
            "healed"
        );
        for p in &self.phases {
            let failed: u64 = p.failed.values().sum();
            let healed = p.healed_after_ms.map_or("-".into(), |ms| format!("{:.0} ms", ms));
            let kinds: Vec<String> = p.failed.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            out += &format!(
                "{:<22} {:>9} {:>6} {:>7} {:>7} {:>9.0} {:>9.0} {:>9}  {}\n",
                p.name,
                p.attempted,
                p.acknowledged,
                failed,
                p.resumed,
                p.latency.p50_ms,
                p.latency.p99_ms,
                healed,
                kinds.join(", ")
            );
        }
        out + &format!("lost: {}, corrupt: {}\n", self.lost, self.corrupt)
    }
}

/// One upload's end.
struct Outcome {
    phase: usize,
    started: Instant,
    finished: Instant,
    /// The id and the SHA-256 of the bytes sent, when acknowledged; else why not.
    result: Result<(String, String), String>,
    resumed: bool,
}

/// Runs the schedule and the uploads, then checks every acknowledged upload.
///
/// # Errors
/// [`Error::Client`] if no client can be built; [`Error::Lost`] when an acknowledged upload
/// is missing or differs (after the report is built and printed by the caller).
pub fn chaos(opts: &ChaosOptions) -> Result<ChaosReport, Error> {
    let rt = crate::runtime()?;
    rt.block_on(async {
        let client = crate::async_client()?;
        let base = opts.base_url.trim_end_matches('/').to_owned();
        let phase = Arc::new(AtomicUsize::new(0));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = tokio::task::JoinSet::new();
        for worker in 0..opts.workers {
            let (client, base, opts) = (client.clone(), base.clone(), opts.clone());
            let (phase, outcomes, stop) = (phase.clone(), outcomes.clone(), stop.clone());
            workers.spawn(async move {
                let mut n = worker as u64;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let (result, resumed) = upload_one(&client, &base, &opts, n).await;
                    let finished = Instant::now();
                    // Counted in the phase it ended in: a fault fails what is in flight.
                    let at = phase.load(Ordering::Relaxed);
                    outcomes.lock().await.push(Outcome {
                        phase: at,
                        started,
                        finished,
                        result,
                        resumed,
                    });
                    n += opts.workers as u64;
                }
            });
        }
        let mut starts = vec![(Instant::now(), None)];
        tokio::time::sleep(opts.phase_length).await;
        for (index, (_, command)) in opts.phases.iter().enumerate() {
            // The phase begins as its command does: what the command breaks is counted in it.
            let start = Instant::now();
            phase.store(index + 1, Ordering::Relaxed);
            let ran = run_command(command).await;
            starts.push((start, Some((command.clone(), ran))));
            tokio::time::sleep(opts.phase_length).await;
        }
        stop.store(true, Ordering::Relaxed);
        while workers.join_next().await.is_some() {}
        let outcomes = std::mem::take(&mut *outcomes.lock().await);
        let (lost, corrupt) = verify(&client, &base, &outcomes).await;
        let names =
            std::iter::once("steady".to_owned()).chain(opts.phases.iter().map(|p| p.0.clone()));
        let phases = names
            .zip(starts)
            .enumerate()
            .map(|(i, (name, (start, command)))| phase_report(name, command, start, i, &outcomes))
            .collect();
        Ok(ChaosReport { base_url: opts.base_url.clone(), phases, lost, corrupt })
    })
}

async fn run_command(command: &str) -> bool {
    let command = command.to_owned();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh").arg("-c").arg(&command).status().is_ok_and(|s| s.success())
    })
    .await
    .unwrap_or(false)
}

fn phase_report(
    name: String,
    command: Option<(String, bool)>,
    start: Instant,
    index: usize,
    outcomes: &[Outcome],
) -> PhaseReport {
    let mine: Vec<&Outcome> = outcomes.iter().filter(|o| o.phase == index).collect();
    let mut recorder = Recorder::default();
    let mut failed = BTreeMap::new();
    for o in &mine {
        match &o.result {
            Ok(_) => recorder.record(o.finished - o.started, Ok(200)),
            Err(why) => *failed.entry(why.clone()).or_insert(0) += 1,
        }
    }
    let last_failure = mine.iter().filter(|o| o.result.is_err()).map(|o| o.finished).max();
    let healed_after_ms = last_failure.map(|last| {
        let healed =
            mine.iter().filter(|o| o.result.is_ok() && o.started >= last).map(|o| o.started).min();
        // Nothing acknowledged since within the phase: the last failure's end.
        healed.unwrap_or(last).saturating_duration_since(start).as_secs_f64() * 1e3
    });
    PhaseReport {
        name,
        command,
        attempted: mine.len() as u64,
        acknowledged: recorder.ok,
        failed,
        resumed: mine.iter().filter(|o| o.resumed && o.result.is_ok()).count() as u64,
        latency: recorder.latency(),
        healed_after_ms,
    }
}

/// Downloads every acknowledged upload. A 404 is a loss; other failures are tried again a few
/// times (the store may still be healing).
async fn verify(client: &reqwest::Client, base: &str, outcomes: &[Outcome]) -> (u64, u64) {
    let (mut lost, mut corrupt) = (0, 0);
    for (id, sha) in outcomes.iter().filter_map(|o| o.result.as_ref().ok()) {
        let mut got = None;
        for _ in 0..5 {
            match client.get(format!("{base}/files/{id}")).send().await {
                Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => break,
                Ok(r) if r.status().is_success() => {
                    if let Ok(body) = r.bytes().await {
                        got = Some(hex::encode(Sha256::digest(&body)));
                        break;
                    }
                }
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        match got {
            None => lost += 1,
            Some(got) if &got != sha => corrupt += 1,
            Some(_) => {}
        }
    }
    (lost, corrupt)
}

/// Upload number `n`: multipart, raw or tus in turn, of generated bytes.
async fn upload_one(
    client: &reqwest::Client,
    base: &str,
    opts: &ChaosOptions,
    n: u64,
) -> (Result<(String, String), String>, bool) {
    let chunks = opts.size.div_ceil(crate::upload::CHUNK as u64);
    let data = Bytes::from(
        crate::upload::pieces(crate::upload::block(n, 0), opts.size, 0..chunks)
            .collect::<Vec<_>>()
            .concat(),
    );
    let sha = hex::encode(Sha256::digest(&data));
    let name = format!("chaos-{n}.bin");
    let status_of = |r: &reqwest::Response| r.status().as_u16().to_string();
    let answer = match n % 3 {
        0 => {
            let part = reqwest::multipart::Part::stream(data).file_name(name);
            let form = reqwest::multipart::Form::new().part("file", part);
            client.post(format!("{base}/files")).multipart(form).send().await
        }
        1 => client.put(format!("{base}/files/{name}")).body(data).send().await,
        _ => return tus(client, base, opts.tus_chunk, data, sha).await,
    };
    let result = match answer {
        Err(e) => Err(failure_kind(&e)),
        Ok(r) if !r.status().is_success() => Err(status_of(&r)),
        Ok(r) => {
            let json: serde_json::Value = r.json().await.unwrap_or_default();
            let info = json.get("files").and_then(|f| f.get(0)).unwrap_or(&json);
            match info.get("id").and_then(|id| id.as_str()) {
                Some(id) if info.get("sha256").and_then(|s| s.as_str()) == Some(&sha) => {
                    Ok((id.to_owned(), sha))
                }
                _ => Err("wrong answer".into()),
            }
        }
    };
    (result, false)
}

/// A tus upload that, when a PATCH fails, asks for the offset (on whichever replica answers)
/// and goes on from there, for up to [`TUS_PATIENCE`]: longer than a lease left by a replica
/// that died mid-PATCH takes to lapse (15 s), so that such an upload is resumed, not failed.
async fn tus(
    client: &reqwest::Client,
    base: &str,
    chunk: u64,
    data: Bytes,
    sha: String,
) -> (Result<(String, String), String>, bool) {
    let created = client
        .post(format!("{base}/uploads/"))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", data.len())
        .send()
        .await;
    let location = match created {
        Err(e) => return (Err(failure_kind(&e)), false),
        Ok(r) if r.status() != 201 => return (Err(r.status().as_u16().to_string()), false),
        Ok(r) => match r.headers().get("location").and_then(|l| l.to_str().ok()) {
            Some(l) => format!("{base}{l}"),
            None => return (Err("wrong answer".into()), false),
        },
    };
    let (mut offset, mut first_failure) = (0u64, None::<(Instant, String)>);
    while offset < data.len() as u64 {
        let end = (offset + chunk).min(data.len() as u64);
        let sent = client
            .patch(&location)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Offset", offset)
            .header("Content-Type", "application/offset+octet-stream")
            .body(data.slice(offset as usize..end as usize))
            .send()
            .await;
        let why = match sent {
            Ok(r) if r.status() == 204 => {
                offset = end;
                continue;
            }
            Ok(r) => r.status().as_u16().to_string(),
            Err(e) => failure_kind(&e),
        };
        let (since, first) = first_failure.get_or_insert_with(|| (Instant::now(), why.clone()));
        if since.elapsed() > TUS_PATIENCE {
            return (Err(format!("tus {first}, then {why}")), true);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        let head = client.head(&location).header("Tus-Resumable", "1.0.0").send().await;
        if let Some(at) = head
            .ok()
            .and_then(|r| r.headers().get("upload-offset")?.to_str().ok()?.parse::<u64>().ok())
        {
            offset = at;
        }
    }
    let id = location.rsplit('/').next().unwrap_or_default().to_owned();
    (Ok((id, sha)), first_failure.is_some())
}

/// How long a tus upload keeps resuming after its first failed PATCH.
const TUS_PATIENCE: Duration = Duration::from_secs(20);

//! `zdn indicators import`: a file or directory streamed to the collector in pieces.
//!
//! The files are read as they are sent, [`PIECE`] bytes per message, so an import of any size
//! (the trails are 50 MB, a MISP feed can be more) needs neither the memory for all of it nor
//! a message limit to match. A file that cannot be read mid-way cancels the call: the
//! collector then discards what it received, and never publishes half an import.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;
use zdn_proto::v1::{self, analyst_service_client::AnalystServiceClient};

/// Content bytes per message: far below the collector's 4 MiB default message limit.
const PIECE: usize = 256 * 1024;

/// One file of the import: where it is, its path in the import, its size.
struct File {
    on_disk: PathBuf,
    relative: String,
    size: u64,
}

/// Streams `path` as the import `name`; progress goes to stderr.
pub async fn run(
    client: &mut AnalystServiceClient<Channel>,
    path: &Path,
    name: &str,
    force: bool,
) -> Result<v1::ImportIndicatorsResponse> {
    let files = list(path)?;
    let total: u64 = files.iter().map(|f| f.size).sum();
    eprintln!("import {name}: sending {} files, {}", files.len(), megabytes(total));
    let (messages, received) = mpsc::channel(4);
    let (failed, failure) = oneshot::channel();
    let reader = tokio::spawn(send(files, name.to_owned(), force, total, messages, failed));
    let stream = futures::stream::unfold(received, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let answer = tokio::select! {
        answer = client.import_indicators(stream) => answer.map(tonic::Response::into_inner).map_err(Into::into),
        // Dropping the call cancels it; the collector discards the partial import.
        Ok(e) = failure => Err(e),
    };
    reader.abort();
    answer
}

/// Reads the files into messages. On a read error it reports it and keeps the stream open,
/// so the call is cancelled rather than ended (which would import what was sent).
async fn send(
    files: Vec<File>,
    name: String,
    force: bool,
    total: u64,
    messages: mpsc::Sender<v1::ImportIndicatorsRequest>,
    failed: oneshot::Sender<anyhow::Error>,
) {
    let progress = progress_bar(total);
    let mut message = v1::ImportIndicatorsRequest { name, force, files: Vec::new() };
    let mut filled = 0;
    for file in files {
        let mut reader = match tokio::fs::File::open(&file.on_disk).await {
            Ok(reader) => reader,
            Err(e) => return fail(failed, messages, e, &file.on_disk).await,
        };
        let mut first = true;
        loop {
            let mut content = vec![0; PIECE - filled];
            let n = match reader.read(&mut content).await {
                Ok(n) => n,
                Err(e) => return fail(failed, messages, e, &file.on_disk).await,
            };
            if n == 0 && !first {
                break;
            }
            content.truncate(n);
            filled += n;
            first = false;
            message.files.push(v1::ImportFile { path: file.relative.clone(), content });
            if filled == PIECE {
                let next =
                    v1::ImportIndicatorsRequest { files: Vec::new(), name: String::new(), force: false };
                if messages.send(std::mem::replace(&mut message, next)).await.is_err() {
                    return;
                }
                progress.inc(filled as u64);
                filled = 0;
            }
            if n == 0 {
                break;
            }
        }
    }
    progress.inc(filled as u64);
    progress.finish_and_clear();
    let _ = messages.send(message).await;
    eprintln!("import: all sent; the collector checks it against its warninglists and publishes");
}

async fn fail(
    failed: oneshot::Sender<anyhow::Error>,
    messages: mpsc::Sender<v1::ImportIndicatorsRequest>,
    e: std::io::Error,
    path: &Path,
) {
    let _ = failed.send(anyhow::Error::new(e).context(format!("reading {}", path.display())));
    // Held until the call is cancelled: a closed stream would end the import normally.
    messages.closed().await;
}

/// A progress bar of the bytes sent, drawn on stderr when it is a terminal; elsewhere (a
/// pipe, a log, CI) indicatif draws nothing, so logs hold no bar.
fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
    let style =
        indicatif::ProgressStyle::with_template("import {bar:40} {binary_bytes}/{binary_total_bytes} {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// The files of an import: one file under its name, or a directory's files (hidden ones left
/// out) under `<directory name>/<relative path>`, in path order.
fn list(path: &Path) -> Result<Vec<File>> {
    let base = path.file_name().with_context(|| format!("{}: not a file or directory", path.display()))?;
    let mut files = Vec::new();
    let mut pending = vec![(path.to_owned(), PathBuf::from(base))];
    while let Some((on_disk, relative)) = pending.pop() {
        let meta = std::fs::metadata(&on_disk).with_context(|| format!("reading {}", on_disk.display()))?;
        if meta.is_dir() {
            for entry in
                std::fs::read_dir(&on_disk).with_context(|| format!("reading {}", on_disk.display()))?
            {
                let entry = entry?;
                if !entry.file_name().to_string_lossy().starts_with('.') {
                    pending.push((entry.path(), relative.join(entry.file_name())));
                }
            }
        } else {
            files.push(File { on_disk, relative: relative.to_string_lossy().into_owned(), size: meta.len() });
        }
    }
    if files.is_empty() {
        bail!("{}: no files to import", path.display());
    }
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(files)
}

//! `ImportIndicators`: an admin adds, or replaces, a named indicator source.
//!
//! The files arrive as a stream of pieces (a file, or a directory such as a MISP feed, by
//! relative paths) and are written to a staging directory under `<data_dir>/imports` as they
//! come, so an import of any size up to `max_import_bytes` needs no more memory than one
//! message. Then they are loaded by the indicator engine exactly as a configured source would
//! be (format detected; every rejected entry reported with file:line and reason) and checked
//! against the configured allowlists (what they withdraw is imported but withheld, and
//! reported). A replacement that would shrink an import below half its size is refused unless
//! forced. Only then does the import take its name's place and a new version get published;
//! if publishing fails, the previous import is put back.

use super::Shared;
use super::publishing::Publishing;
use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use tokio::io::AsyncWriteExt;
use tonic::{Status, Streaming};
use zdn_proto::v1;

/// Files one import may hold.
const MAX_FILES: usize = 100_000;
/// Examples of rejected and held-back values in the answer.
const EXAMPLES: usize = 20;

/// Receives the rest of an import stream whose `first` message the caller has read (and
/// audited), then checks and publishes it.
pub async fn import(
    shared: &Shared,
    first: v1::ImportIndicatorsRequest,
    rest: Streaming<v1::ImportIndicatorsRequest>,
) -> Result<v1::ImportIndicatorsResponse, Status> {
    check_name(&first.name)?;
    let publishing = shared.publishing.clone();
    let (name, force) = (first.name.clone(), first.force);
    let dir = publishing.imports().0.join(format!(".staging-{name}-{}", zdn_timestamps::now_ms()));
    let mut staging = Staging::new(dir.clone(), name.clone(), shared.config.max_import_bytes);
    let entry = match staging.receive(first, rest).await {
        Ok(entry) => entry,
        Err(e) => {
            drop(staging);
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return Err(e);
        }
    };
    tracing::info!(name, files = staging.files, bytes = staging.bytes, "import received");
    let checked = move || {
        let result = check_and_publish(&publishing, &name, force, &dir, &entry);
        let _ = std::fs::remove_dir_all(&dir);
        result
    };
    match tokio::task::spawn_blocking(checked).await {
        Ok(result) => result,
        Err(e) => Err(Status::internal(format!("import task failed: {e}"))),
    }
}

/// An import being written to its staging directory, piece by piece.
struct Staging {
    dir: PathBuf,
    name: String,
    limit: u64,
    /// The first part of every path: an import is one file or one directory.
    top: Option<PathBuf>,
    current: Option<(String, tokio::fs::File)>,
    written: HashSet<String>,
    files: usize,
    bytes: u64,
}

impl Staging {
    fn new(dir: PathBuf, name: String, limit: u64) -> Staging {
        Staging { dir, name, limit, top: None, current: None, written: HashSet::new(), files: 0, bytes: 0 }
    }

    /// Writes every message's pieces; returns the imported file or directory.
    async fn receive(
        &mut self,
        first: v1::ImportIndicatorsRequest,
        mut rest: Streaming<v1::ImportIndicatorsRequest>,
    ) -> Result<PathBuf, Status> {
        self.add(first).await?;
        while let Some(message) = rest.message().await? {
            if !message.name.is_empty() && message.name != self.name {
                return Err(Status::invalid_argument("every message of an import names the same import"));
            }
            self.add(message).await?;
        }
        if let Some((path, mut file)) = self.current.take() {
            file.flush().await.map_err(|e| write_error(&path, &e))?;
        }
        if self.files == 0 {
            return Err(Status::invalid_argument(format!("an import holds 1-{MAX_FILES} files")));
        }
        Ok(self.dir.join(self.top.take().unwrap_or_default()))
    }

    async fn add(&mut self, message: v1::ImportIndicatorsRequest) -> Result<(), Status> {
        for piece in message.files {
            self.bytes += piece.content.len() as u64;
            if self.bytes > self.limit {
                return Err(Status::resource_exhausted(format!(
                    "the import is larger than the collector's max_import_bytes ({} bytes); raise it in collector.toml to import more",
                    self.limit
                )));
            }
            if self.current.as_ref().is_none_or(|(path, _)| *path != piece.path) {
                self.open(&piece.path).await?;
            }
            let (path, file) = self.current.as_mut().expect("opened above");
            file.write_all(&piece.content).await.map_err(|e| write_error(path, &e))?;
        }
        Ok(())
    }

    /// Closes the file being written and starts the one at `path`.
    async fn open(&mut self, path: &str) -> Result<(), Status> {
        if let Some((done, mut file)) = self.current.take() {
            file.flush().await.map_err(|e| write_error(&done, &e))?;
            self.written.insert(done);
        }
        if self.written.contains(path) {
            return Err(Status::invalid_argument(format!(
                "import path {path:?}: a file's pieces come one after another, not after another file"
            )));
        }
        self.files += 1;
        if self.files > MAX_FILES {
            return Err(Status::invalid_argument(format!("an import holds 1-{MAX_FILES} files")));
        }
        let relative = relative(path)?;
        let first = relative.components().next().map(|c| PathBuf::from(c.as_os_str()));
        if self.top.get_or_insert_with(|| first.clone().unwrap_or_default()) != &first.unwrap_or_default() {
            return Err(Status::invalid_argument(
                "an import is one file or one directory: all paths share their first part",
            ));
        }
        let on_disk = self.dir.join(&relative);
        if let Some(parent) = on_disk.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| write_error(path, &e))?;
        }
        let file = tokio::fs::File::create_new(&on_disk).await.map_err(|e| write_error(path, &e))?;
        self.current = Some((path.to_owned(), file));
        Ok(())
    }
}

fn write_error(path: &str, e: &std::io::Error) -> Status {
    Status::unavailable(format!("writing {path}: {e}"))
}

/// Loads the staged import, checks it, and puts it in its name's place with a new version
/// published (or the previous import back). Blocking.
fn check_and_publish(
    publishing: &Publishing,
    name: &str,
    force: bool,
    staging: &Path,
    entry: &Path,
) -> Result<v1::ImportIndicatorsResponse, Status> {
    let imports = publishing.imports().0.to_owned();
    let response = check(staging, entry, publishing, &imports.join(name), force)?;
    let target = imports.join(name);
    let backup = imports.join(format!(".replaced-{name}-{}", zdn_timestamps::now_ms()));
    let version = publishing
        .with_import(
            || {
                if target.exists() {
                    std::fs::rename(&target, &backup)?;
                }
                std::fs::rename(staging, &target)
            },
            || {
                let _ = std::fs::remove_dir_all(&target);
                let _ = std::fs::rename(&backup, &target);
            },
        )
        .map_err(|e| Status::failed_precondition(format!("import not published: {e}")))?;
    let _ = std::fs::remove_dir_all(&backup);
    tracing::info!(name, entry = %entry.display(), version, "indicators imported and published");
    Ok(v1::ImportIndicatorsResponse { published_version: version, ..response })
}

/// Loads the staged `entry` under the allowlists; refuses a replacement that would shrink the
/// `previous` import below half unless `force`. Returns the report.
fn check(
    staging: &Path,
    entry: &Path,
    publishing: &Publishing,
    previous: &Path,
    force: bool,
) -> Result<v1::ImportIndicatorsResponse, Status> {
    let strip = |s: String| s.replace(&format!("{}/", staging.display()), "");
    let allowlists = publishing.imports().1;
    let built = zdn_indicators::build_set(&[entry.to_owned()], allowlists, None)
        .map_err(|e| Status::invalid_argument(strip(e.to_string())))?;
    if !force
        && let Some(old) = std::fs::read_dir(previous).ok().and_then(|mut d| d.next()).and_then(Result::ok)
        && let Ok(old) = zdn_indicators::build_set(&[old.path()], zdn_indicators::Allowlists::NONE, None)
        && built.set.len() < old.set.len() / 2
    {
        return Err(Status::failed_precondition(format!(
            "the import {:?} would shrink from {} to {} indicators; import with --force if that is right",
            previous.file_name().unwrap_or_default(),
            old.set.len(),
            built.set.len()
        )));
    }
    let rejected: Vec<String> = built
        .reports
        .iter()
        .flat_map(|report| {
            report.rejected.iter().map(move |x| strip(format!("{}: {:?} {}", x.location, x.text, x.reason)))
        })
        .collect();
    Ok(v1::ImportIndicatorsResponse {
        reports: vec![strip(built.summary())],
        accepted: built.reports.iter().map(|report| report.accepted as u64).sum(),
        rejected: rejected.len() as u64,
        rejected_examples: rejected.into_iter().take(EXAMPLES).collect(),
        held_back: built.suppressed.len() as u64,
        held_back_examples: built.suppressed.iter().take(EXAMPLES).map(|i| i.value.clone()).collect(),
        published_version: 0,
    })
}

fn check_name(name: &str) -> Result<(), Status> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument("an import's name is 1-64 of a-z, 0-9, '-' and '_'"))
    }
}

/// A path inside the import: relative, no `..`, no root, nothing hidden.
fn relative(path: &str) -> Result<PathBuf, Status> {
    let p = Path::new(path);
    let plain = !path.is_empty()
        && path.len() <= 1024
        && p.components().all(|c| matches!(c, Component::Normal(s) if !s.to_string_lossy().starts_with('.')));
    if plain {
        Ok(p.to_owned())
    } else {
        Err(Status::invalid_argument(format!(
            "import path {path:?}: must be relative, without '..' or hidden parts"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths_cannot_escape_the_imports_directory() {
        assert!(check_name("misp-feed_1").is_ok());
        for bad in ["", "Feed", "../x", "a/b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(relative("feed/manifest.json").is_ok());
        for bad in ["", "/etc/passwd", "../x", "feed/../../x", "feed/.hidden", "./x"] {
            assert!(relative(bad).is_err(), "{bad}");
        }
    }
}

//! `ImportIndicators`: an admin adds, or replaces, a named indicator source.
//!
//! The files arrive in the request (a file, or a directory such as a MISP feed, by relative
//! paths), are written to a staging directory under `<data_dir>/imports`, loaded by the
//! indicator engine exactly as a configured source would be (format detected; every rejected
//! entry reported with file:line and reason) and checked against the configured allowlists
//! (covered values are imported but withheld, and reported). A replacement that would shrink
//! an import below half its size is refused unless forced. Only then does the import take its
//! name's place and a new version get published; if publishing fails, the previous import is
//! put back.

use super::Shared;
use std::path::{Component, Path, PathBuf};
use tonic::Status;
use zdn_proto::v1;

/// Files one import may hold.
const MAX_FILES: usize = 100_000;
/// Examples of rejected and held-back values in the answer.
const EXAMPLES: usize = 20;

pub async fn import(
    shared: &Shared,
    r: v1::ImportIndicatorsRequest,
) -> Result<v1::ImportIndicatorsResponse, Status> {
    let publishing = shared.publishing.clone();
    match tokio::task::spawn_blocking(move || import_blocking(&publishing, r)).await {
        Ok(result) => result,
        Err(e) => Err(Status::internal(format!("import task failed: {e}"))),
    }
}

fn import_blocking(
    publishing: &super::indicator::Publishing,
    r: v1::ImportIndicatorsRequest,
) -> Result<v1::ImportIndicatorsResponse, Status> {
    check_name(&r.name)?;
    if r.files.is_empty() || r.files.len() > MAX_FILES {
        return Err(Status::invalid_argument(format!("an import holds 1-{MAX_FILES} files")));
    }
    let (imports, allowlists) = publishing.imports();
    let staging = imports.join(format!(".staging-{}-{}", r.name, zdn_timestamps::now_ms()));
    let result = stage_and_check(&staging, &r, allowlists, &imports.join(&r.name));
    let (response, entry) = match result {
        Ok(ok) => ok,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let target = imports.join(&r.name);
    let backup = imports.join(format!(".replaced-{}-{}", r.name, zdn_timestamps::now_ms()));
    let version = publishing
        .with_import(
            || {
                if target.exists() {
                    std::fs::rename(&target, &backup)?;
                }
                std::fs::rename(&staging, &target)
            },
            || {
                let _ = std::fs::remove_dir_all(&target);
                let _ = std::fs::rename(&backup, &target);
            },
        )
        .map_err(|e| {
            let _ = std::fs::remove_dir_all(&staging);
            Status::failed_precondition(format!("import not published: {e}"))
        })?;
    let _ = std::fs::remove_dir_all(&backup);
    tracing::info!(name = %r.name, entry = %entry.display(), version, "indicators imported and published");
    Ok(v1::ImportIndicatorsResponse { published_version: version, ..response })
}

/// Writes the files under `staging` and loads them; returns the report and the imported entry.
fn stage_and_check(
    staging: &Path,
    r: &v1::ImportIndicatorsRequest,
    allowlists: &[PathBuf],
    previous: &Path,
) -> Result<(v1::ImportIndicatorsResponse, PathBuf), Status> {
    let mut top = None;
    for file in &r.files {
        let relative = relative(&file.path)?;
        let first = relative.components().next().map(|c| c.as_os_str().to_owned());
        if top.get_or_insert_with(|| first.clone()) != &first {
            return Err(Status::invalid_argument(
                "an import is one file or one directory: all paths share their first part",
            ));
        }
        let path = staging.join(&relative);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, &file.content));
        written.map_err(|e| Status::unavailable(format!("writing {}: {e}", relative.display())))?;
    }
    let entry = staging.join(top.flatten().unwrap_or_default());
    let built = zdn_indicators::build_set(std::slice::from_ref(&entry), allowlists, None).map_err(|e| {
        Status::invalid_argument(e.to_string().replace(&format!("{}/", staging.display()), ""))
    })?;
    if !r.force
        && let Some(old) = std::fs::read_dir(previous).ok().and_then(|mut d| d.next()).and_then(Result::ok)
        && let Ok(old) = zdn_indicators::build_set(&[old.path()], &[], None)
        && built.set.len() < old.set.len() / 2
    {
        return Err(Status::failed_precondition(format!(
            "the import {:?} would shrink from {} to {} indicators; import with --force if that is right",
            r.name,
            old.set.len(),
            built.set.len()
        )));
    }
    let strip = |s: String| s.replace(&format!("{}/", staging.display()), "");
    let rejected: Vec<String> = built
        .reports
        .iter()
        .flat_map(|report| {
            report.rejected.iter().map(move |x| strip(format!("{}: {:?} {}", x.location, x.text, x.reason)))
        })
        .collect();
    let response = v1::ImportIndicatorsResponse {
        reports: built.reports.iter().map(|report| strip(report.to_string())).collect(),
        accepted: built.reports.iter().map(|report| report.accepted as u64).sum(),
        rejected: rejected.len() as u64,
        rejected_examples: rejected.into_iter().take(EXAMPLES).collect(),
        held_back: built.suppressed.len() as u64,
        held_back_examples: built.suppressed.iter().take(EXAMPLES).map(|i| i.value.clone()).collect(),
        published_version: 0,
    };
    Ok((response, entry))
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

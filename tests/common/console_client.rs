//! The console from outside, with curl (an independent HTTPS client): calls with a cookie
//! jar, and a signed-in session made from a console token.

use crate::Network;
use std::path::{Path, PathBuf};

/// What curl got: status, headers (lower-case names) and body.
pub struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

/// One curl call at the console; `jar` keeps cookies between calls.
pub async fn curl(net: &Network, jar: &Path, identity: Option<&Path>, path: &str, extra: &[&str]) -> Answer {
    let console = net.collector.console.expect("the console is enabled");
    let url = format!("https://localhost:{}{path}", console.port());
    let ca = net.pki.join("collector").join("ca.pem");
    let mut args: Vec<String> =
        ["--silent", "--show-error", "--max-time", "20", "--dump-header", "-"].map(String::from).to_vec();
    args.extend(["--cacert".into(), ca.display().to_string()]);
    args.extend([
        "--cookie".into(),
        jar.display().to_string(),
        "--cookie-jar".into(),
        jar.display().to_string(),
    ]);
    if let Some(dir) = identity {
        args.extend(["--cert".into(), dir.join("cert.pem").display().to_string()]);
        args.extend(["--key".into(), dir.join("key.pem").display().to_string()]);
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    args.push(url);
    let out = tokio::process::Command::new("curl").args(&args).output().await.expect("curl is installed");
    assert!(out.status.success(), "curl {path}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = headers.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Answer { status, headers: headers.to_ascii_lowercase(), body: body.to_owned() }
}

pub fn origin(net: &Network) -> String {
    format!("Origin: https://localhost:{}", net.collector.console.unwrap().port())
}

/// `zdn admin token issue` as `admin`: (id, secret).
pub async fn issue_token(net: &Network, admin: &Path, participant: &str, name: &str) -> (String, String) {
    let issued = net
        .zdn_json(admin, &["admin", "token", "issue", "--participant", participant, "--name", name])
        .await
        .unwrap();
    (issued[0]["id"].as_str().unwrap().to_owned(), issued[0]["token"].as_str().unwrap().to_owned())
}

/// A cookie jar in `dir` signed in to the console as `participant`'s analyst `name`.
pub async fn signed_in(net: &Network, admin: &Path, dir: &Path, participant: &str, name: &str) -> PathBuf {
    let jar = dir.join(name);
    let (_, token) = issue_token(net, admin, participant, name).await;
    let form = format!("token={token}");
    let answer = curl(net, &jar, None, "/login", &["-H", &origin(net), "-d", &form]).await;
    assert_eq!(answer.status, 303, "sign-in as {name}: {}", answer.body);
    jar
}

//! The web console, end to end, against a collector filled with the demo's sightings:
//! - over plain HTTPS with curl (an independent client): sign-in with tokens and client
//!   certificates, the cookie's attributes, refusals without a session, CSRF and cross-origin
//!   refusals, revocation, security headers, the audit trail;
//! - in a real headless Chromium: the board, a correlation appearing live without reload, a
//!   `<script>`-carrying URL rendered as text, a participant analyst who never sees another
//!   institution's name, the false-positive button, a CSRF-less POST refused. Screenshots of
//!   every page go to `target/console-screenshots/`.

use serde_json::Value;
use std::path::PathBuf;
use zdn_agent::sighting::Sighting;
use zdn_indicators::{Kind, Via};
use zdn_integration_tests::browser::{self, Browser};
use zdn_integration_tests::console_client::{curl, issue_token, origin};
use zdn_integration_tests::{CERT, Network};
use zdn_transport::Role;

/// The CSRF token a page carries in `<meta name="csrf-token">`.
fn csrf_of(page: &str) -> String {
    let start = page.find("name=\"csrf-token\" content=\"").expect("csrf meta") + 27;
    page[start..start + 64].to_owned()
}

async fn filled_network() -> (Network, PathBuf) {
    // Agents without a heartbeat for a second are stale, so the fleet page shows both kinds.
    let net = Network::start_configured("sqlite", false, |c| c.stale_after_seconds = 1).await.unwrap();
    net.run_demo_agents().await.unwrap();
    let admin = net.issue(CERT, Role::Admin, "root");
    (net, admin)
}

#[tokio::test]
async fn sessions_csrf_and_revocation_hold_over_https() {
    let (net, admin) = filled_network().await;
    let jars = tempfile::tempdir().unwrap();
    let jar = jars.path().join("ann");
    let (id, token) = issue_token(&net, &admin, CERT, "Ann").await;
    // Bad token requests are refused with the reason.
    for (args, reason) in [
        (vec!["--participant", "Not A Participant", "--name", "x"], "participant"),
        (vec!["--participant", CERT, "--name", "x", "--ttl-hours", "99999"], "at most"),
        (vec!["--participant", CERT, "--name", " "], "name must be"),
    ] {
        let mut argv = vec!["admin", "token", "issue"];
        argv.extend(args);
        let err = net.zdn(Some(&admin), &argv).await.unwrap_err().to_string();
        assert!(err.contains(reason), "{argv:?}: {err}");
    }

    // No session: pages send to the login, the API and POSTs are refused.
    let page = curl(&net, &jar, None, "/", &[]).await;
    assert_eq!((page.status, page.headers.contains("location: /login")), (303, true), "{}", page.headers);
    assert_eq!(curl(&net, &jar, None, "/api/v1/correlations", &[]).await.status, 401);
    assert_eq!(curl(&net, &jar, None, "/logout", &["-X", "POST", "-H", &origin(&net)]).await.status, 401);
    assert_eq!(curl(&net, &jar, None, "/", &["-b", "__Host-zdn-session=zdnc_forged"]).await.status, 303);

    // Sign-in: a wrong token, a foreign or missing Origin are refused; the right one sets a
    // cookie only a same-site HTTPS request can send and no script can read.
    let form = format!("token={token}");
    let bad = curl(&net, &jar, None, "/login", &["-H", &origin(&net), "-d", "token=zdnc_wrong"]).await;
    assert_eq!(bad.status, 401);
    assert!(bad.body.contains("unknown, expired or revoked token"), "{}", bad.body);
    let foreign = ["-H", "Origin: https://evil.example", "-d", &form];
    assert_eq!(curl(&net, &jar, None, "/login", &foreign).await.status, 403);
    assert_eq!(curl(&net, &jar, None, "/login", &["-d", &form]).await.status, 403, "no Origin");
    let signed_in = curl(&net, &jar, None, "/login", &["-H", &origin(&net), "-d", &form]).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let cookie = signed_in.headers.lines().find(|l| l.starts_with("set-cookie:")).expect("a cookie");
    for attribute in ["__host-zdn-session=zdnc_", "httponly", "secure", "samesite=strict", "path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(!cookie.contains(&token.to_ascii_lowercase()), "the session is not the token");

    // Signed in: the CERT's view, with strict headers.
    let board = curl(&net, &jar, None, "/", &[]).await;
    assert_eq!(board.status, 200);
    assert!(board.body.contains("umc-noord") && board.body.contains("ziekenhuis-zuid"));
    for header in [
        "content-security-policy: default-src 'none'; script-src 'self'; style-src 'self'",
        "x-frame-options: deny",
        "x-content-type-options: nosniff",
        "cache-control: no-store",
        "referrer-policy: same-origin",
    ] {
        assert!(board.headers.contains(header), "{header} missing:\n{}", board.headers);
    }
    // Paging: two sightings a page, following the page's own link to the next.
    let first = curl(&net, &jar, None, "/sightings?limit=2", &[]).await;
    assert_eq!(first.body.matches("<tr class=\"\" data-key=").count(), 2, "{}", first.body);
    let start = first.body.find("id=\"next-page\" href=\"").expect("a next page") + 21;
    let next = first.body[start..].split('"').next().unwrap().replace("&amp;", "&").replace("&#38;", "&");
    let second = curl(&net, &jar, None, &next, &[]).await;
    assert_eq!(second.status, 200, "{next}");
    assert_eq!(second.body.matches("<tr class=\"\" data-key=").count(), 2);
    assert_ne!(first.body, second.body);

    // Exports are downloads.
    let stix =
        curl(&net, &jar, None, "/api/v1/export?format=stix&indicator=updates.evil-cdn.example", &[]).await;
    assert_eq!(stix.status, 200);
    assert!(stix.headers.contains("content-disposition: attachment; filename=\"zdn-sightings.stix.json\""));
    assert_eq!(serde_json::from_str::<Value>(&stix.body).unwrap()["type"], "bundle");

    let json = curl(&net, &jar, None, "/api/v1/correlations", &[]).await;
    assert_eq!(json.status, 200);
    let json: Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(json["correlations"].as_array().unwrap().len(), 2);

    // CSRF: a POST needs this session's token and this origin.
    let csrf = csrf_of(&board.body);
    let mark = |csrf: &str| format!("value=updates.evil-cdn.example&reason=test&csrf={csrf}");
    let no_csrf = ["-H", &origin(&net), "-d", "value=updates.evil-cdn.example&reason=test"];
    assert_eq!(curl(&net, &jar, None, "/indicator/false-positive", &no_csrf).await.status, 403);
    let wrong = mark(&"0".repeat(64));
    assert_eq!(
        curl(&net, &jar, None, "/indicator/false-positive", &["-H", &origin(&net), "-d", &wrong])
            .await
            .status,
        403
    );
    let right = mark(&csrf);
    let foreign = ["-H", "Origin: https://evil.example", "-d", &right];
    assert_eq!(curl(&net, &jar, None, "/indicator/false-positive", &foreign).await.status, 403);
    let header = format!("x-csrf-token: {}", "f".repeat(64));
    let by_header = ["-H", &origin(&net), "-H", &header, "-d", "value=x&reason=y"];
    assert_eq!(curl(&net, &jar, None, "/indicator/false-positive", &by_header).await.status, 403);
    assert_eq!(
        net.zdn_json(&admin, &["correlations"]).await.unwrap().as_array().unwrap().len(),
        2,
        "nothing was marked"
    );

    // The audit log names the console user; the token list holds no secrets.
    let audit = net.zdn(Some(&admin), &["audit", "--format", "json"]).await.unwrap();
    assert!(audit.contains("Ann (console)") && audit.contains("list_correlations"), "{audit}");
    let tokens = net.zdn(Some(&admin), &["admin", "token", "list", "--format", "json"]).await.unwrap();
    assert!(!tokens.contains(&token) && !tokens.contains("zdnc_"), "{tokens}");
    let tokens: Value = serde_json::from_str(&tokens).unwrap();
    assert_eq!(tokens.as_array().unwrap().len(), 2, "the token and its session: {tokens}");

    // Revoking the token ends its session at once.
    let revoked = net.zdn_json(&admin, &["admin", "token", "revoke", &id]).await.unwrap();
    assert_eq!(revoked[0]["revoked"], 2);
    assert_eq!(curl(&net, &jar, None, "/api/v1/correlations", &[]).await.status, 401);
    assert_eq!(curl(&net, &jar, None, "/login", &["-H", &origin(&net), "-d", &form]).await.status, 401);

    // Client certificates: an analyst's signs in; an agent's may not.
    let analyst = net.issue(CERT, Role::Analyst, "cora");
    let cert_jar = jars.path().join("cora");
    let login = curl(&net, &cert_jar, Some(&analyst), "/login", &[]).await;
    assert!(login.body.contains("Continue as z-cert/analyst (cora)"), "{}", login.body);
    let post = ["-X", "POST", "-H", &origin(&net)];
    assert_eq!(curl(&net, &cert_jar, Some(&analyst), "/login/certificate", &post).await.status, 303);
    assert_eq!(curl(&net, &cert_jar, Some(&analyst), "/fleet", &[]).await.status, 200);
    let agent = net.issue("umc-noord", Role::Agent, "gw-7");
    let refused = curl(&net, &jars.path().join("gw"), Some(&agent), "/login/certificate", &post).await;
    assert_eq!(refused.status, 401);
    assert_eq!(curl(&net, &jars.path().join("none"), None, "/login/certificate", &post).await.status, 401);

    // A participant analyst's pages and JSON never name another institution.
    let (_, theirs) = issue_token(&net, &admin, "umc-noord", "Uma").await;
    let uma = jars.path().join("uma");
    let form = format!("token={theirs}");
    assert_eq!(curl(&net, &uma, None, "/login", &["-H", &origin(&net), "-d", &form]).await.status, 303);
    for path in [
        "/",
        "/indicator?value=updates.evil-cdn.example",
        "/sightings",
        "/fleet",
        "/api/v1/correlations",
        "/api/v1/indicator?value=updates.evil-cdn.example",
    ] {
        let answer = curl(&net, &uma, None, path, &[]).await;
        assert_eq!(answer.status, 200, "{path}");
        assert!(
            !answer.body.contains("ziekenhuis-zuid") && !answer.body.contains("ggz-oost"),
            "{path}: {}",
            answer.body
        );
    }
    assert_eq!(curl(&net, &uma, None, "/audit", &[]).await.status, 403, "admins only");

    // A flood of sign-in attempts from one address is throttled (30 a minute).
    let mut statuses = Vec::new();
    for _ in 0..30 {
        let attempt =
            curl(&net, &jar, None, "/login", &["-H", &origin(&net), "-d", "token=zdnc_guess"]).await;
        statuses.push(attempt.status);
    }
    assert_eq!(statuses.first(), Some(&401));
    // The bucket refills one attempt every 2 s, so on a slow machine an attempt between
    // refusals may get through again: what matters is that the flood is refused.
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(refused >= 5, "throttled: {statuses:?}");
}

/// A sighting of `indicator` (a URL) by a host of the demo site's participant.
fn url_sighting(template: &Sighting, indicator: &str) -> Sighting {
    Sighting {
        id: uuid::Uuid::now_v7().to_string(),
        indicator: indicator.to_owned(),
        indicator_id: String::new(),
        kind: Kind::Url,
        via: Via::HttpUrl,
        observed: indicator.to_owned(),
        dst_port: 80,
        proto: "tcp".into(),
        resolved_name: String::new(),
        ..template.clone()
    }
}

/// A heartbeat from `participant`'s gateway, with `ech` ClientHellos it could not read.
async fn heartbeat(net: &Network, participant: &str, ech: u64) {
    let bundle = net.issue(participant, Role::Agent, "gw-hb");
    let channel =
        zdn_transport::client::connect(&net.url, Some(&zdn_transport::Bundle::load(&bundle).unwrap()))
            .await
            .unwrap();
    let beat = zdn_proto::v1::HeartbeatRequest {
        agent_version: "test".into(),
        indicator_version: 7,
        indicator_count: 12,
        packets_seen: 1_000,
        blind_spots: [("encrypted_client_hello".to_owned(), ech)].into(),
        packets_dropped_kernel: 12,
        capture_workers: vec![zdn_proto::v1::CaptureWorker {
            interface: "eth1".into(),
            worker: 0,
            method: "ring".into(),
            packets: 1_000,
            kernel_drops: 12,
            queue_freezes: 2,
        }],
        ..Default::default()
    };
    zdn_agent::heartbeat::send(channel, beat).await.unwrap();
}

/// What `js` returns in the page.
async fn eval(browser: &Browser, js: &str) -> Value {
    browser.client.execute(js, vec![]).await.unwrap()
}

#[tokio::test]
async fn the_console_in_a_real_browser() {
    if !browser::available() {
        return;
    }
    let (net, admin) = filled_network().await;
    heartbeat(&net, "ggz-oost", 0).await;
    let (_, cert_token) = issue_token(&net, &admin, CERT, "Ann").await;
    let (_, admin_token) = net
        .zdn_json(
            &admin,
            &["admin", "token", "issue", "--participant", CERT, "--role", "admin", "--name", "Root"],
        )
        .await
        .map(|t| (t[0]["id"].clone(), t[0]["token"].as_str().unwrap().to_owned()))
        .unwrap();
    let (_, umc_token) = issue_token(&net, &admin, "umc-noord", "Uma").await;
    let pin = browser::spki_pin(&net.pki.join("collector").join("cert.pem")).unwrap();
    let browser = Browser::start(&pin).await.unwrap();
    let base = format!("https://localhost:{}", net.collector.console.unwrap().port());
    let c = &browser.client;

    // Without a session, the API is refused and pages lead to the login.
    c.goto(&format!("{base}/api/v1/correlations")).await.unwrap();
    assert!(c.source().await.unwrap().contains("sign in first"));
    c.goto(&format!("{base}/")).await.unwrap();
    browser.wait_for("#token").await.unwrap();
    browser.screenshot("login").await.unwrap();

    // Sign in as the CERT's analyst: the board shows the demo's correlations by name.
    sign_in(&browser, &cert_token).await;
    browser.wait_for("#board tr[data-key='updates.evil-cdn.example#1']").await.unwrap();
    let board = c.source().await.unwrap();
    assert!(board.contains("umc-noord") && board.contains("ziekenhuis-zuid"));
    browser.wait_for("#live-status.live-on").await.unwrap();
    browser.screenshot("board").await.unwrap();

    // Two institutions see a URL that carries a script; the row appears without a reload,
    // as text.
    let hostile = "http://203.0.113.9/x?q=<script>alert(1)</script>";
    let umc = net.sightings_of(&zdn_integration_tests::site("umc-noord")).unwrap();
    let zuid = net.sightings_of(&zdn_integration_tests::site("ziekenhuis-zuid")).unwrap();
    let gw_umc = net.issue("umc-noord", Role::Agent, "gw-2");
    let gw_zuid = net.issue("ziekenhuis-zuid", Role::Agent, "gw-2");
    net.send(&gw_umc, &[url_sighting(&umc[0], hostile)]).await.unwrap();
    net.send(&gw_zuid, &[url_sighting(&zuid[0], hostile)]).await.unwrap();
    let live = browser.wait_for("#board tr.live a").await.unwrap();
    assert_eq!(live.text().await.unwrap(), hostile);
    assert_eq!(eval(&browser, "return document.scripts.length").await, 1, "only console.js");
    assert_eq!(
        eval(&browser, "return performance.getEntriesByType('navigation').length").await,
        1,
        "no reload"
    );
    browser.screenshot("board-live").await.unwrap();

    // Its page: the value as text, a timeline chart, the false-positive button.
    live.click().await.unwrap();
    let value = browser.wait_for("#indicator-value").await.unwrap();
    assert_eq!(value.text().await.unwrap(), hostile);
    assert_eq!(eval(&browser, "return document.scripts.length").await, 1);
    assert_eq!(c.find_all(fantoccini::Locator::Css("#timeline .bar")).await.unwrap().len(), 2);
    browser.screenshot("indicator").await.unwrap();

    // A POST without the CSRF token is refused, even from the console's own page.
    let status = c
        .execute_async(
            "const done = arguments[0];
             fetch('/indicator/false-positive', { method: 'POST',
               body: new URLSearchParams({ value: 'updates.evil-cdn.example', reason: 'forged' }) })
               .then((r) => done(r.status));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, 403);

    // The button: withdrawn, the correlation closed.
    c.find(fantoccini::Locator::Css("#false-positive input[name=reason]"))
        .await
        .unwrap()
        .send_keys("test traffic")
        .await
        .unwrap();
    c.find(fantoccini::Locator::Css("#false-positive button")).await.unwrap().click().await.unwrap();
    browser.wait_for("#marked").await.unwrap();
    assert!(c.source().await.unwrap().contains("status-false_positive"));
    browser.screenshot("indicator-false-positive").await.unwrap();

    // The other pages.
    c.goto(&format!("{base}/sightings?indicator=updates.evil-cdn.example")).await.unwrap();
    let rows = c.find_all(fantoccini::Locator::Css("#sightings tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 3, "the demo's three sightings of it");
    browser.screenshot("sightings").await.unwrap();
    // ggz-oost's heartbeat is seconds old by now (stale), umc-noord's fresh.
    heartbeat(&net, "umc-noord", 3).await;
    c.goto(&format!("{base}/fleet")).await.unwrap();
    let stale = browser.wait_for("#fleet tr.stale").await.unwrap().text().await.unwrap();
    assert!(stale.contains("STALE") && stale.contains("ggz-oost"), "{stale}");
    let fresh =
        c.find(fantoccini::Locator::Css("#fleet tbody tr:not(.stale)")).await.unwrap().text().await.unwrap();
    assert!(fresh.contains("umc-noord") && fresh.contains("encrypted_client_hello: 3"), "{fresh}");
    assert!(fresh.contains("eth1/0 ring 1000 read, 12 dropped"), "each capture worker: {fresh}");
    browser.screenshot("fleet").await.unwrap();
    c.goto(&format!("{base}/exports")).await.unwrap();
    browser.wait_for("form.filters").await.unwrap();
    browser.screenshot("exports").await.unwrap();
    c.goto(&format!("{base}/audit")).await.unwrap();
    assert!(
        browser
            .wait_for("#error-message")
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("may not act as admin")
    );
    sign_out(&browser, &base).await;

    // An admin sees the audit log, with the analyst's console calls in it.
    sign_in(&browser, &admin_token).await;
    c.goto(&format!("{base}/audit")).await.unwrap();
    let audit = browser.wait_for("#audit").await.unwrap().text().await.unwrap();
    assert!(audit.contains("Ann (console)") && audit.contains("mark_false_positive"), "{audit}");
    browser.screenshot("audit").await.unwrap();
    sign_out(&browser, &base).await;

    // umc-noord's analyst: counts, never names — not in the page, not in its source, not in
    // what arrives live.
    sign_in(&browser, &umc_token).await;
    browser.wait_for("#live-status.live-on").await.unwrap();
    let fresh = "http://203.0.113.10/payload.bin";
    let ggz = net.sightings_of(&zdn_integration_tests::site("ggz-oost")).unwrap();
    let gw_ggz = net.issue("ggz-oost", Role::Agent, "gw-2");
    net.send(&gw_umc, &[url_sighting(&umc[0], fresh)]).await.unwrap();
    net.send(&gw_ggz, &[url_sighting(&ggz[0], fresh)]).await.unwrap();
    let live = browser.wait_for("#board tr.live").await.unwrap();
    assert!(live.text().await.unwrap().contains(fresh));
    for path in ["/", "/indicator?value=updates.evil-cdn.example", "/sightings", "/fleet"] {
        if path != "/" {
            c.goto(&format!("{base}{path}")).await.unwrap();
            browser.wait_for("nav").await.unwrap();
        }
        let source = c.source().await.unwrap();
        for other in ["ziekenhuis-zuid", "ggz-oost"] {
            assert!(!source.contains(other), "{path} names {other}");
        }
        match path {
            "/" => drop(browser.screenshot("board-participant").await.unwrap()),
            "/sightings" => {}
            "/fleet" => {}
            _ => drop(browser.screenshot("indicator-participant").await.unwrap()),
        }
    }
    browser.close().await.unwrap();
}

async fn sign_in(browser: &Browser, token: &str) {
    let c = &browser.client;
    browser.wait_for("#token").await.unwrap().send_keys(token).await.unwrap();
    c.find(fantoccini::Locator::Css("#sign-in")).await.unwrap().click().await.unwrap();
    if browser.wait_for("#user").await.is_err() {
        panic!("not signed in: {} {}", c.current_url().await.unwrap(), c.source().await.unwrap());
    }
}

/// Signs out with the button every signed-in page carries.
async fn sign_out(browser: &Browser, base: &str) {
    browser.client.goto(&format!("{base}/")).await.unwrap();
    browser.wait_for("header.top form button").await.unwrap().click().await.unwrap();
    browser.wait_for("#token").await.unwrap();
}

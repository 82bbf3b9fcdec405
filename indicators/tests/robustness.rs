//! Arbitrary text through normalisation and every text loader: errors, never panics. A bounded,
//! deterministic fuzz pass that runs in `cargo test`.

use rand::{Rng, SeedableRng, rngs::StdRng};
use zdn_indicators::{Kind, normalise, parse_plain};

/// Characters that matter to the parsers, plus some multi-byte ones.
const ALPHABET: &[char] = &[
    'a', 'z', 'A', '0', '9', '.', ':', '/', '[', ']', '(', ')', '%', '#', '*', '@', '?', '_', '-', ' ', '\t',
    '\'', '"', ',', '|', '=', 'x', 'h', 'p', 't', 'İ', 'ß', 'ä', '中', '\u{200b}', '\0', '\n',
];

fn random_text(rng: &mut StdRng) -> String {
    (0..rng.random_range(0..60)).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())]).collect()
}

#[test]
fn normalise_and_loaders_take_any_text() {
    let mut rng = StdRng::seed_from_u64(42);
    let seeds = [
        "hxxp://evil[.]example/a",
        "1.2.3.4:80",
        "[::1]:443",
        "10.0.0.0/8",
        "/gate.php",
        "http:///x",
        "bücher.example",
        // Inputs the fuzz target once found not to be fixed points.
        "evil[[.]]example",
        "/a%%358",
        "https://x.example:80/a",
        "http://0.0.2.0/0",
    ];
    for i in 0..100_000 {
        let text = if i % 2 == 0 {
            random_text(&mut rng)
        } else {
            let mut s: Vec<char> = seeds[i % seeds.len()].chars().collect();
            let at = rng.random_range(0..=s.len());
            s.insert(at, ALPHABET[rng.random_range(0..ALPHABET.len())]);
            s.into_iter().collect()
        };
        if let Ok(n) = normalise(&text) {
            // Canonical forms are fixed points, of the same kind; a URL's value means
            // `http://` + value (as the `indicator_text` fuzz target checks).
            let again = match n.kind {
                Kind::Url if !n.value.starts_with('/') => format!("http://{}", n.value),
                _ => n.value.clone(),
            };
            let again = normalise(&again).map(|m| (m.kind, m.value));
            assert_eq!(again, Ok((n.kind, n.value.clone())), "{text:?}");
        }
        let loaded = parse_plain("fuzz", &text);
        // Every value line is accounted for exactly once.
        let r = &loaded.report;
        assert_eq!(loaded.indicators.len(), r.accepted, "{text:?}");
        let lines = text.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')).count();
        assert!(r.accepted + r.duplicates + r.rejected.len() <= lines, "{text:?}: {r:?}");
    }
}

#[test]
fn json_loaders_take_any_json() {
    let mut rng = StdRng::seed_from_u64(9);
    let dir = tempfile::tempdir().unwrap();
    let shapes = [
        r#"{"type":"bundle","objects":[{"type":"indicator","pattern":"P"}]}"#,
        r#"{"Event":{"Attribute":[{"type":"url","to_ids":true,"value":"P"}],"Object":[{"Attribute":[{"object_relation":"dst-port","value":"P"},{"type":"ip-dst","to_ids":"1","value":"P"}]}]}}"#,
    ];
    for i in 0..3_000 {
        let payload: String =
            random_text(&mut rng).chars().filter(|c| !matches!(c, '"' | '\\' | '\0' | '\n' | '\t')).collect();
        let doc = shapes[i % shapes.len()].replace('P', &payload);
        let path = dir.path().join("f.json");
        std::fs::write(&path, doc).unwrap();
        // Any JSON loads or is refused with a reason; what loads is accounted for.
        match zdn_indicators::load(&path) {
            Ok(loaded) => {
                for l in &loaded {
                    assert_eq!(l.indicators.len(), l.report.accepted, "{:?}", l.report);
                }
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}

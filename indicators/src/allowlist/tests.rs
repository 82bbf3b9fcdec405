use super::*;
use crate::formats::parse_plain;
use rand::{Rng, SeedableRng};

fn lists(policies: &[(&str, Policy)]) -> Allowlist {
    let mut allow = Allowlist::default();
    let docs = [
        (
            "top",
            serde_json::json!({"name": "Top domains", "type": "hostname", "list": ["google.com", "Example.ORG."]}),
        ),
        (
            "cloud",
            serde_json::json!({"name": "Cloud", "type": "cidr", "list": ["20.192.0.0/10", "2001:4860::/32"]}),
        ),
        ("dns", serde_json::json!({"name": "Resolvers", "type": "cidr", "list": ["8.8.8.8", "8.8.4.0/24"]})),
        (
            "fp",
            serde_json::json!({"name": "Strings", "type": "string", "list": ["exact.example", "http://example.net/a"]}),
        ),
        ("re", serde_json::json!({"name": "Regexes", "type": "regex", "list": ["^a.*"]})),
    ];
    for (slug, doc) in &docs {
        let policy = policies.iter().find(|(s, _)| s == slug).map_or(Policy::Specific, |&(_, p)| p);
        allow.add_list(slug, slug, policy, &Document::deserialize(doc).unwrap()).unwrap();
    }
    allow
}

const TRAIL: &str = "google.com\ndocs.google.com\nnotgoogle.com\n20.198.21.60\n20.198.21.60:443\n20.0.0.1\n\
20.192.0.0/10\n20.200.0.0/16\n8.8.8.8\n8.8.8.8:53\n8.8.4.4\nexact.example\nsub.exact.example\n\
example.org/x.exe\nexample.net/a\n2001:4860::8888\n";

/// One source through the lists: what remains, and what was withdrawn.
fn screen(allow: &mut Allowlist, source: Vec<Indicator>) -> (Vec<Indicator>, Vec<Indicator>) {
    let mut sources = vec![source];
    let gone = allow.apply(&mut sources);
    (sources.pop().unwrap(), gone)
}

/// What remains, what was withdrawn, and each flagged value with its tags.
type Outcome = (Vec<String>, Vec<String>, Vec<(String, Vec<String>)>);

fn run(allow: &mut Allowlist) -> Outcome {
    let (kept, gone) = screen(allow, parse_plain("trail", TRAIL).indicators);
    let flagged = kept
        .iter()
        .filter(|i| i.meta.tags.iter().any(|t| t.starts_with(FLAG_TAG)))
        .map(|i| (i.value.clone(), i.meta.tags.clone()))
        .collect();
    (kept.into_iter().map(|i| i.value).collect(), gone.into_iter().map(|i| i.value).collect(), flagged)
}

/// The default withdraws only what an entry names exactly; a C2 `IP:port` or address inside a
/// cloud range, a subdomain of a top domain and a URL on it are kept and flagged.
#[test]
fn by_default_a_list_withdraws_what_it_names_and_flags_what_it_covers() {
    let mut allow = lists(&[]);
    let (kept, gone, flagged) = run(&mut allow);
    assert_eq!(gone, ["google.com", "20.192.0.0/10", "8.8.8.8", "exact.example", "example.net/a"]);
    assert_eq!(
        kept,
        [
            "docs.google.com",
            "notgoogle.com",
            "20.198.21.60",
            "20.198.21.60:443",
            "20.0.0.1",
            "20.200.0.0/16",
            "8.8.8.8:53",
            "8.8.4.4",
            "sub.exact.example",
            "example.org/x.exe",
            "2001:4860::8888",
        ]
    );
    let flag = |v: &str| flagged.iter().find(|(f, _)| f == v).map(|(_, tags)| tags.clone());
    assert_eq!(flag("20.198.21.60:443"), Some(vec!["warninglist:cloud".to_owned()]));
    assert_eq!(flag("docs.google.com"), Some(vec!["warninglist:top".to_owned()]));
    assert_eq!(flag("8.8.8.8:53"), Some(vec!["warninglist:dns".to_owned()]));
    assert_eq!(flag("notgoogle.com"), None);
    assert_eq!(flag("20.0.0.1"), None, "outside 20.192.0.0/10");
    assert_eq!(flagged.len(), 8, "{flagged:?}");
    let counts: Vec<(&str, usize, usize)> =
        allow.lists().iter().map(|l| (l.slug.as_str(), l.suppressed, l.flagged)).collect();
    assert_eq!(counts, [("top", 1, 2), ("cloud", 1, 4), ("dns", 1, 2), ("fp", 2, 0), ("re", 0, 0)]);
    assert_eq!(allow.flagged(), 8);
    assert_eq!(allow.lists()[4].report.skipped.values().sum::<usize>(), 1);
}

#[test]
fn suppress_flag_and_off_per_list() {
    let mut allow =
        lists(&[("top", Policy::Suppress), ("cloud", Policy::Suppress), ("dns", Policy::Suppress)]);
    let (_, gone, _) = run(&mut allow);
    assert_eq!(
        gone,
        [
            "google.com",
            "docs.google.com",
            "20.198.21.60",
            "20.198.21.60:443",
            "20.192.0.0/10",
            "20.200.0.0/16",
            "8.8.8.8",
            "8.8.8.8:53",
            "8.8.4.4",
            "exact.example",
            "example.org/x.exe",
            "example.net/a",
            "2001:4860::8888",
        ],
        "suppress is what every list did before policies"
    );
    let mut allow =
        lists(&[("fp", Policy::Flag), ("top", Policy::Off), ("cloud", Policy::Off), ("dns", Policy::Off)]);
    let (kept, gone, flagged) = run(&mut allow);
    assert!(gone.is_empty() && kept.len() == 16, "{gone:?}");
    assert_eq!(
        flagged.iter().map(|(v, _)| v.as_str()).collect::<Vec<_>>(),
        ["exact.example", "example.net/a"]
    );
    assert_eq!(allow.lists()[0].report.skipped.get("policy off"), Some(&2));
}

#[test]
fn lists_load_from_directories_by_slug_and_a_policy_for_no_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (slug, doc) in [
        ("amazon-aws", r#"{"name": "Amazon AWS", "type": "cidr", "list": ["52.192.0.0/11"]}"#),
        ("public-dns", r#"{"name": "Resolvers", "type": "cidr", "list": ["8.8.8.8/32"]}"#),
    ] {
        std::fs::create_dir(dir.path().join(slug)).unwrap();
        std::fs::write(dir.path().join(slug).join("list.json"), doc).unwrap();
    }
    let trail = parse_plain("t", "52.196.149.49\n8.8.8.8\n").indicators;
    let policies = Policies::all(Policy::Specific);
    let mut allow = Allowlist::load(&[dir.path().to_owned()], &policies).unwrap();
    let (kept, gone) = screen(&mut allow, trail.clone());
    assert_eq!((kept.len(), gone.len()), (1, 1));
    assert_eq!(kept[0].meta.tags, ["warninglist:amazon-aws"]);
    let mut policies = Policies::all(Policy::Specific);
    policies.lists.insert("Amazon AWS".into(), Policy::Suppress);
    let (kept, _) = screen(&mut Allowlist::load(&[dir.path().to_owned()], &policies).unwrap(), trail);
    assert!(kept.is_empty(), "named by its `name`");
    policies.lists.insert("amazon-awz".into(), Policy::Off);
    let err = Allowlist::load(&[dir.path().to_owned()], &policies).unwrap_err().to_string();
    assert!(err.contains("no loaded warninglist is called amazon-awz"), "{err}");
    assert!(Allowlist::default().add_warninglist("t", &serde_json::json!({"type": "string"})).is_err());
}

/// The slow, obvious rule: every list entry checked against the indicator one by one.
fn oracle(entries: &[(u16, &str, String)], policies: &[Policy], ind: &Indicator) -> Verdict {
    let mut verdict = Verdict::default();
    for (list, typ, entry) in entries {
        let Ok(n) = normalise(entry) else { continue };
        let covered = match n.kind {
            Kind::Ipv4 | Kind::Cidr => {
                let net: IpNet =
                    n.value.parse().or_else(|_| n.value.parse::<IpAddr>().map(IpNet::from)).unwrap();
                let net = net.trunc();
                match ind.kind {
                    Kind::Ipv4 => ind
                        .value
                        .parse::<IpAddr>()
                        .ok()
                        .filter(|ip| net.contains(ip))
                        .map(|ip| IpNet::from(ip) == net),
                    Kind::Cidr => {
                        ind.value.parse::<IpNet>().ok().filter(|i| net.contains(i)).map(|i| i.trunc() == net)
                    }
                    Kind::IpPort => ind
                        .value
                        .parse::<std::net::SocketAddr>()
                        .ok()
                        .filter(|sa| net.contains(&sa.ip()))
                        .map(|_| false),
                    _ => None,
                }
            }
            Kind::Domain if *typ == "hostname" => {
                let host = match ind.kind {
                    Kind::Domain => Some(ind.value.as_str()),
                    Kind::Url => url_host(&ind.value).err(),
                    _ => None,
                };
                host.filter(|h| *h == n.value || h.ends_with(&format!(".{}", n.value)))
                    .map(|h| ind.kind == Kind::Domain && h == n.value)
            }
            _ => (n.kind == ind.kind && n.value == ind.value).then_some(true),
        };
        let Some(exact) = covered else { continue };
        match policies[usize::from(*list)].decide(exact) {
            Decision::Suppress => {
                verdict.suppressed_by = Some(verdict.suppressed_by.map_or(*list, |l| l.min(*list)))
            }
            Decision::Flag if !verdict.flagged_by.contains(list) => verdict.flagged_by.push(*list),
            _ => {}
        }
    }
    if verdict.suppressed_by.is_some() {
        verdict.flagged_by.clear();
    }
    verdict.flagged_by.sort_unstable();
    verdict
}

/// Random nested networks, hostnames and strings in six lists of random types under random
/// policies: the fast lookups agree with the oracle on random indicators near and inside them.
#[test]
fn judging_agrees_with_checking_every_entry() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(16);
    let names = ["a.example", "b.a.example", "c.b.a.example", "example", "c.example", "x.example"];
    let mut judged = [0usize; 3];
    for _ in 0..200 {
        let mut entries: Vec<(u16, &str, String)> = Vec::new();
        let mut policies = Vec::new();
        let mut allow = Allowlist::default();
        for list in 0..6u16 {
            let policy =
                [Policy::Specific, Policy::Suppress, Policy::Flag, Policy::Off][rng.random_range(0..4)];
            let typ = ["cidr", "hostname", "string"][rng.random_range(0..3)];
            let texts: Vec<String> = (0..rng.random_range(0..8))
                .map(|_| match typ {
                    "cidr" => format!(
                        "10.{}.{}.0/{}",
                        rng.random_range(0..3),
                        rng.random_range(0..3),
                        rng.random_range(8..=32)
                    ),
                    "hostname" => names[rng.random_range(0..names.len())].to_owned(),
                    _ => ["a.example", "10.1.1.0", "x.example/p", "10.0.0.0/16"][rng.random_range(0..4)]
                        .to_owned(),
                })
                .collect();
            entries.extend(texts.iter().map(|t| (list, typ, t.clone())));
            let doc = serde_json::json!({"name": format!("l{list}"), "type": typ, "list": texts});
            allow.add_list("t", &format!("l{list}"), policy, &Document::deserialize(&doc).unwrap()).unwrap();
            policies.push(policy);
        }
        let mut trail = String::new();
        for _ in 0..30 {
            let (a, b) = (rng.random_range(0..3), rng.random_range(0..3));
            let line = match rng.random_range(0..5) {
                0 => format!("10.{a}.{b}.{}", rng.random_range(0..2)),
                1 => format!("10.{a}.{b}.0/{}", rng.random_range(8..=32)),
                2 => format!("10.{a}.{b}.0:{}", rng.random_range(1..3)),
                3 => names[rng.random_range(0..names.len())].to_owned(),
                _ => format!("{}/p", names[rng.random_range(0..names.len())]),
            };
            trail.push_str(&line);
            trail.push('\n');
        }
        for ind in parse_plain("trail", &trail).indicators {
            let (fast, slow) = (allow.judge(&ind), oracle(&entries, &policies, &ind));
            assert_eq!(fast, slow, "{} under {entries:?} {policies:?}", ind.value);
            let outcome = match (&fast.suppressed_by, fast.flagged_by.is_empty()) {
                (Some(_), _) => 0,
                (None, false) => 1,
                (None, true) => 2,
            };
            judged[outcome] += 1;
        }
    }
    assert!(judged.iter().all(|&n| n > 100), "every outcome is exercised: {judged:?}");
}

/// Cisco's Umbrella list writes IPv4 addresses as IPv4-mapped IPv6 (`::ffff:9270:3d68`); they
/// mean the IPv4 address, as they do everywhere else (`normalise`).
#[test]
fn a_mapped_ipv6_entry_names_its_ipv4_address() {
    let mut allow = Allowlist::default();
    let doc = serde_json::json!({"name": "umbrella", "type": "cidr", "list": ["::ffff:9270:3d68", "2001:db8::/32"]});
    allow.add_warninglist("t", &doc).unwrap();
    let (kept, gone) = screen(&mut allow, parse_plain("t", "146.112.61.104\n2001:db8::1\n").indicators);
    assert_eq!(gone.iter().map(|i| i.value.as_str()).collect::<Vec<_>>(), ["146.112.61.104"]);
    assert_eq!(kept[0].meta.tags, ["warninglist:umbrella"]);
}

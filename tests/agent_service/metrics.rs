//! The collector's Prometheus endpoint: what it counts of real deliveries, in a format
//! Prometheus's own linter accepts.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_collectors_metrics_count_what_agents_delivered_and_pass_promtool() {
    let site = Site::new();
    let cert_list = site.path("cert.txt");
    std::fs::write(&cert_list, format!("{STORM_TARGET}\n")).unwrap();
    let collector = site
        .start_collector_configured(std::slice::from_ref(&cert_list), |c| {
            c.metrics.listen = "127.0.0.1:0".into()
        })
        .await;
    let port = collector.metrics.expect("metrics.listen is set").port();
    let before = scrape(port);
    assert_eq!(metric(&before, "zdn_collector_sightings_stored_total"), 0);
    assert!(metric(&before, "zdn_collector_published_set_version") > 0, "a set is published");
    assert_eq!(metric(&before, "zdn_collector_published_set_indicators"), 1);

    let pcap = site.path("hosts.pcap");
    write_storm(&pcap, 10, 30, 1000).unwrap(); // 10 hosts: 10 first hits + 10 repeats
    let agent = Agent::start(&site.agent_config("agent.toml", &pcap, ""), site.path("agent.log"));
    site.wait_stored(20, LONG);
    wait_spool_empty(&site.path("agent-state"));
    let body = scrape(port);
    assert_promtool_accepts("the_collectors_metrics_count_what_agents_delivered_and_pass_promtool", &body);
    assert_eq!(metric(&body, "zdn_collector_sightings_stored_total"), 20);
    assert_eq!(metric(&body, "zdn_collector_sightings_rejected_total"), 0);
    assert!(metric(&body, "zdn_collector_store_ingest_seconds_count") >= 1, "each batch's commit is timed");
    // Gauges read at scrape time are there, whatever their value now.
    for gauge in [
        "zdn_collector_agents",
        "zdn_collector_agents_stale",
        "zdn_collector_correlation_events_total{change=\"opened\"}",
    ] {
        metric(&body, gauge);
    }
    drop(agent);
    collector.stop().await.unwrap();
}

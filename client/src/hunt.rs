//! `zdn hunt`: asks every agent to look an indicator up in its destination history, then
//! follows the answers until every agent asked has answered or `--wait` runs out. Prints one
//! row per agent that answered; the coverage goes to stderr ("3 of 3 agents answered, 1 with
//! contacts: 2 retro sightings").

use anyhow::Result;
use clap::Args;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use zdn_answers::rows::{Row, hunt_answer_row};
use zdn_proto::v1::{self, analyst_service_client::AnalystServiceClient};

#[derive(Args)]
pub struct HuntArgs {
    /// The indicator: a domain (its subdomains too), an address, a network, address:port, a
    /// URL, a JA3 or JA4.
    indicator: String,
    /// Days to look back (the agents' histories keep 14 by default).
    #[arg(long, default_value_t = 14)]
    days: u32,
    /// Seconds to wait for the agents' answers (they answer in their next heartbeat).
    #[arg(long, default_value_t = 60)]
    wait: u64,
}

pub async fn run(client: &mut AnalystServiceClient<Channel>, args: HuntArgs) -> Result<Vec<Row>> {
    let started = client
        .start_hunt(v1::StartHuntRequest { indicator: args.indicator, days: args.days })
        .await?
        .into_inner();
    eprintln!(
        "hunt {} for {} ({}) back to {}: asked {} agents",
        started.id,
        started.indicator,
        started.kind,
        zdn_timestamps::format_unix_ms(started.since_unix_ms),
        started.agents_asked
    );
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    let mut status = started;
    while (status.answers.len() as u32) < status.agents_asked && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        status = client.get_hunt(v1::GetHuntRequest { id: status.id.clone() }).await?.into_inner();
    }
    let hits = status.answers.iter().filter(|a| a.sightings > 0).count();
    let sightings: u32 = status.answers.iter().map(|a| a.sightings).sum();
    eprintln!(
        "{} of {} agents answered, {hits} with contacts: {sightings} retro sightings (zdn sightings --indicator {})",
        status.answers.len(),
        status.agents_asked,
        status.indicator
    );
    Ok(status.answers.iter().map(hunt_answer_row).collect())
}

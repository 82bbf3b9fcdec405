//! `zdn admin token`: web-console sign-in tokens (admin certificates only).

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;
use tonic::transport::Channel;
use zdn_answers::rows::{Row, to_row};
use zdn_proto::v1::{self, analyst_service_client::AnalystServiceClient};
use zdn_timestamps::format_unix_ms;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issue a token for one analyst; it is printed once (the collector keeps only its hash).
    ///
    /// Example: zdn admin token issue --participant z-cert --name "Ann Analyst" --ttl-hours 12
    Issue {
        /// The analyst's institution: the CERT's own id sees everything, others their own.
        #[arg(long)]
        participant: String,
        /// analyst or admin.
        #[arg(long, default_value = "analyst", value_parser = ["analyst", "admin"])]
        role: String,
        /// The holder's name, as the audit log will show it.
        #[arg(long)]
        name: String,
        /// Lifetime in hours (at most 2160, 90 days).
        #[arg(long, default_value_t = 8)]
        ttl_hours: u32,
    },
    /// Revoke a token (and end every session signed in with it) or one session.
    ///
    /// Example: zdn admin token revoke t-0190a1b2
    Revoke {
        /// The token's or session's id, as `zdn admin token list` shows it.
        id: String,
    },
    /// Tokens and sessions, newest first, without their secrets.
    ///
    /// Example: zdn admin token list --format json
    List,
}

pub async fn run(client: &mut AnalystServiceClient<Channel>, command: TokenCommand) -> Result<Vec<Row>> {
    Ok(match command {
        TokenCommand::Issue { participant, role, name, ttl_hours } => {
            let request = v1::IssueConsoleTokenRequest { participant, role, name, ttl_hours };
            let t = client.issue_console_token(request).await?.into_inner();
            eprintln!("Give the token to its holder over a trusted channel; it is not shown again.");
            vec![to_row(
                json!({ "id": t.id, "token": t.token, "expires": format_unix_ms(t.expires_unix_ms) }),
            )]
        }
        TokenCommand::Revoke { id } => {
            let r = client.revoke_console_token(v1::RevokeConsoleTokenRequest { id: id.clone() }).await?;
            vec![to_row(json!({ "id": id, "revoked": r.into_inner().revoked }))]
        }
        TokenCommand::List => {
            let tokens =
                client.list_console_tokens(v1::ListConsoleTokensRequest {}).await?.into_inner().tokens;
            tokens.iter().map(token_row).collect()
        }
    })
}

fn token_row(t: &v1::ConsoleToken) -> Row {
    let revoked = if t.revoked_unix_ms == 0 { String::new() } else { format_unix_ms(t.revoked_unix_ms) };
    to_row(json!({
        "id": t.id,
        "kind": t.kind,
        "participant": t.participant,
        "role": t.role,
        "name": t.name,
        "created": format_unix_ms(t.created_unix_ms),
        "expires": format_unix_ms(t.expires_unix_ms),
        "revoked": revoked,
        "issued_by": t.issued_by,
        "parent": t.parent,
    }))
}

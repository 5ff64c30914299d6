//! `create_support_ticket(customer_id, subject, description, priority, idempotency_key?)`
//! — needs `ticket:create`. Persisted; the same idempotency key (per client) returns the
//! same ticket instead of opening a second one.

use schemars::JsonSchema;
use serde::Deserialize;

use super::validate::{self, FailureCode, ToolFailure};
use crate::service::store::{NewTicket, Store, StoreError, Ticket};

pub const MAX_SUBJECT: usize = 200;
pub const MAX_DESCRIPTION: usize = 5_000;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateSupportTicketArgs {
    /// Customer ID, three letters and three digits (e.g. ABC123).
    pub customer_id: String,
    /// One-line summary (1-200 characters).
    pub subject: String,
    /// What happened (1-5000 characters).
    pub description: String,
    /// One of: low, medium, high, urgent.
    #[schemars(with = "Priority")]
    pub priority: String,
    /// Optional key that makes retries safe: the same key returns the same ticket.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// Only for the JSON schema: the priority enum advertised to clients.
#[derive(JsonSchema)]
#[schemars(inline)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum Priority {
    Low,
    Medium,
    High,
    Urgent,
}

pub async fn run(store: &Store, client_id: &str, args: &CreateSupportTicketArgs) -> Result<Ticket, ToolFailure> {
    let customer_id = validate::customer_id(&args.customer_id)?;
    let subject = validate::text("subject", &args.subject, MAX_SUBJECT)?;
    let description = validate::text("description", &args.description, MAX_DESCRIPTION)?;
    let priority = validate::priority(&args.priority)?;
    let key = args.idempotency_key.as_deref().map(validate::idempotency_key).transpose()?;
    if store.customer(&customer_id).await.map_err(ToolFailure::store)?.is_none() {
        return Err(ToolFailure::not_found(&customer_id));
    }
    let new = NewTicket {
        customer_id: &customer_id,
        subject: &subject,
        description: &description,
        priority,
        client_id,
        idempotency_key: key.as_deref(),
    };
    store.create_ticket(&new).await.map_err(|e| match e {
        StoreError::IdempotencyConflict(existing) => ToolFailure {
            code: FailureCode::Conflict,
            message: format!("idempotency_key was already used for ticket {existing} with different content"),
        },
        other => ToolFailure::store(other),
    })
}

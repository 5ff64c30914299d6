//! The customer-service MCP tools, exposed through rmcp.
//!
//! Each tool's logic lives in its own file and knows nothing about MCP; this file is the
//! glue: JSON-schema inputs, structured outputs, the `_meta` that advertises required
//! scopes, and a second, server-side scope check from the verified claims the bearer guard
//! put in the request (defence in depth: the guard already refused such calls with 403).

// rmcp's tool handlers return `Result<_, CallToolResult>` (its error type is the tool-error
// result itself), which is larger than clippy likes; boxing it would not fit the macro.
#![allow(clippy::result_large_err)]

pub mod account;
pub mod customer;
pub mod ticket;
pub mod validate;

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, MetaObject};
use rmcp::{Json, ServerHandler, tool, tool_handler, tool_router};
use serde::Serialize;

use self::account::{AccountValue, CalculateAccountValueArgs};
use self::customer::{GetCustomerInfoArgs, GetRecentCustomersArgs, RecentCustomers};
use self::ticket::CreateSupportTicketArgs;
use self::validate::{FailureCode, ToolFailure};
use super::policy;
use super::store::{Customer, Store, Ticket};
use crate::auth::verify::VerifiedClaims;
use crate::types::policy::advertise;

/// One instance per request (rmcp's stateless mode calls the factory per POST), so it only
/// holds `Arc`s.
#[derive(Clone)]
pub struct CustomerService {
    store: Arc<Store>,
    tool_router: Arc<ToolRouter<CustomerService>>,
}

impl CustomerService {
    /// Builds the shared router once; `instance` then clones cheaply per request.
    pub fn prototype(store: Arc<Store>) -> Self {
        Self { store, tool_router: Arc::new(Self::tool_router()) }
    }
}

fn scopes_meta(tool: &str) -> MetaObject {
    let mut meta = MetaObject::new();
    advertise(&mut meta, &policy::required_scopes(tool).unwrap_or_default());
    meta
}

/// Tool errors carry the message as text (what a model reads) and `{code, message}` as
/// structured content (what a program reads).
fn failure(f: ToolFailure) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(f.message.clone())]);
    result.structured_content = serde_json::to_value(&f).ok();
    result
}

type ToolResult<T> = Result<Json<T>, CallToolResult>;

fn done<T: Serialize>(r: Result<T, ToolFailure>) -> ToolResult<T> {
    r.map(Json).map_err(failure)
}

/// The server-side scope check inside the tool. Without verified claims (the guard was
/// bypassed or misconfigured) the call is refused, never served.
fn authorize(parts: &http::request::Parts, tool: &str) -> Result<Arc<VerifiedClaims>, CallToolResult> {
    let forbidden = |message: String| failure(ToolFailure { code: FailureCode::Forbidden, message });
    let claims = parts
        .extensions
        .get::<Arc<VerifiedClaims>>()
        .cloned()
        .ok_or_else(|| forbidden("no verified access token for this request".into()))?;
    let required = policy::required_scopes(tool).unwrap_or_default();
    let missing = claims.scope.missing(&required);
    if !missing.is_empty() {
        return Err(forbidden(format!("tool {tool} requires scope {required}; the token lacks {missing}")));
    }
    Ok(claims)
}

#[tool_router]
impl CustomerService {
    /// Look up one customer's profile: contact details, tier, status, lifetime value, notes.
    #[tool(meta = scopes_meta(policy::GET_CUSTOMER_INFO), annotations(read_only_hint = true, open_world_hint = false))]
    async fn get_customer_info(
        &self,
        Parameters(args): Parameters<GetCustomerInfoArgs>,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<Json<Customer>, CallToolResult> {
        authorize(&parts, policy::GET_CUSTOMER_INFO)?;
        done(customer::info(&self.store, &args).await)
    }

    /// List the most recently active customers (newest first).
    #[tool(meta = scopes_meta(policy::GET_RECENT_CUSTOMERS), annotations(read_only_hint = true, open_world_hint = false))]
    async fn get_recent_customers(
        &self,
        Parameters(args): Parameters<GetRecentCustomersArgs>,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<Json<RecentCustomers>, CallToolResult> {
        authorize(&parts, policy::GET_RECENT_CUSTOMERS)?;
        done(customer::recent(&self.store, &args).await)
    }

    /// Open a support ticket for a customer. Pass an idempotency_key to make retries safe.
    #[tool(meta = scopes_meta(policy::CREATE_SUPPORT_TICKET), annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false))]
    async fn create_support_ticket(
        &self,
        Parameters(args): Parameters<CreateSupportTicketArgs>,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<Json<Ticket>, CallToolResult> {
        let claims = authorize(&parts, policy::CREATE_SUPPORT_TICKET)?;
        done(ticket::run(&self.store, &claims.client_id, &args).await)
    }

    /// Calculate a customer's account value from purchase amounts: total, average, count, min, max and tier.
    #[tool(meta = scopes_meta(policy::CALCULATE_ACCOUNT_VALUE), annotations(read_only_hint = true, open_world_hint = false))]
    async fn calculate_account_value(
        &self,
        Parameters(args): Parameters<CalculateAccountValueArgs>,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<Json<AccountValue>, CallToolResult> {
        authorize(&parts, policy::CALCULATE_ACCOUNT_VALUE)?;
        done(account::run(&self.store, &args).await)
    }
}

#[tool_handler(
    router = self.tool_router,
    name = "warden-customer-service",
    version = "0.1.0",
    instructions = "Customer-service tools. Each tool's _meta lists the OAuth scopes it requires under io.warden/required_scopes."
)]
impl ServerHandler for CustomerService {}

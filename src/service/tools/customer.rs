//! `get_customer_info(customer_id)` and `get_recent_customers(limit)` — both need
//! `customer:read`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validate::{self, ToolFailure};
use crate::service::store::{Customer, Store};

#[derive(Debug, Deserialize, JsonSchema)]
pub struct GetCustomerInfoArgs {
    /// Customer ID, three letters and three digits (e.g. ABC123).
    pub customer_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct GetRecentCustomersArgs {
    /// How many customers to return, most recently active first (1-50, default 5).
    #[serde(default)]
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecentCustomers {
    pub count: usize,
    pub customers: Vec<Customer>,
}

pub const MAX_RECENT: i64 = 50;

pub async fn info(store: &Store, args: &GetCustomerInfoArgs) -> Result<Customer, ToolFailure> {
    let id = validate::customer_id(&args.customer_id)?;
    store.customer(&id).await.map_err(ToolFailure::store)?.ok_or_else(|| ToolFailure::not_found(&id))
}

pub async fn recent(store: &Store, args: &GetRecentCustomersArgs) -> Result<RecentCustomers, ToolFailure> {
    let limit = args.limit.unwrap_or(5);
    if !(1..=MAX_RECENT).contains(&limit) {
        return Err(ToolFailure::invalid(format!("limit must be between 1 and {MAX_RECENT}; got {limit}")));
    }
    let customers = store.recent_customers(limit as u32).await.map_err(ToolFailure::store)?;
    Ok(RecentCustomers { count: customers.len(), customers })
}

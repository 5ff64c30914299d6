//! `calculate_account_value(customer_id, amounts)` — needs `account:calculate`.
//! Total, average, count, min, max and the tier the total earns.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validate::{self, ToolFailure};
use crate::service::store::Store;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CalculateAccountValueArgs {
    /// Customer ID, three letters and three digits (e.g. ABC123).
    pub customer_id: String,
    /// Purchase amounts: 1 to 100 values, each between 0 and 1,000,000.
    pub amounts: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AccountValue {
    pub customer_id: String,
    pub count: usize,
    pub total: f64,
    pub average: f64,
    pub min: f64,
    pub max: f64,
    /// bronze (< 1,000), silver (< 5,000), gold (< 10,000) or platinum.
    pub tier: String,
}

pub async fn run(store: &Store, args: &CalculateAccountValueArgs) -> Result<AccountValue, ToolFailure> {
    let id = validate::customer_id(&args.customer_id)?;
    validate::amounts(&args.amounts)?;
    if store.customer(&id).await.map_err(ToolFailure::store)?.is_none() {
        return Err(ToolFailure::not_found(&id));
    }
    Ok(summarize(id, &args.amounts))
}

fn summarize(customer_id: String, amounts: &[f64]) -> AccountValue {
    let total: f64 = amounts.iter().sum();
    let count = amounts.len();
    let min = amounts.iter().copied().fold(f64::INFINITY, f64::min);
    let max = amounts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    AccountValue {
        customer_id,
        count,
        total: cents(total),
        average: cents(total / count as f64),
        min,
        max,
        tier: tier(total).to_string(),
    }
}

fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub fn tier(total: f64) -> &'static str {
    match total {
        t if t >= 10_000.0 => "platinum",
        t if t >= 5_000.0 => "gold",
        t if t >= 1_000.0 => "silver",
        _ => "bronze",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_articles_example() {
        let v = summarize("ABC123".into(), &[250.0, 175.50, 82.25]);
        assert_eq!((v.count, v.total, v.average, v.min, v.max), (3, 507.75, 169.25, 82.25, 250.0));
        assert_eq!(v.tier, "bronze");
    }

    #[test]
    fn tiers_by_total() {
        assert_eq!(tier(999.99), "bronze");
        assert_eq!(tier(1000.0), "silver");
        assert_eq!(tier(5000.0), "gold");
        assert_eq!(tier(10_000.0), "platinum");
    }
}

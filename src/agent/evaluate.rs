//! `Evaluate`, as in DSPy: run a program over a dev set with bounded concurrency, score
//! each prediction with a metric, report the average and every item. A program error
//! scores 0 and is reported, never counted as a success.

use std::future::Future;

use futures::StreamExt;
use serde::Serialize;

use super::predict::{Example, Prediction};

#[derive(Debug, Clone, Serialize)]
pub struct EvalItem {
    pub index: usize,
    pub score: f64,
    pub prediction: Option<Prediction>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Mean score in [0, 1] over all items (errors count as 0).
    pub average: f64,
    pub items: Vec<EvalItem>,
}

#[derive(Debug, Clone, Copy)]
pub struct Evaluate {
    pub concurrency: usize,
}

impl Default for Evaluate {
    fn default() -> Self {
        Self { concurrency: 4 }
    }
}

impl Evaluate {
    pub async fn run<P, Fut, E, M>(&self, devset: &[Example], program: P, metric: M) -> EvalReport
    where
        P: Fn(Example) -> Fut,
        Fut: Future<Output = Result<Prediction, E>>,
        E: std::fmt::Display,
        M: Fn(&Example, &Prediction) -> f64,
    {
        let items: Vec<EvalItem> = futures::stream::iter(devset.iter().cloned().enumerate())
            .map(|(index, ex)| {
                let fut = program(ex);
                async move { (index, fut.await) }
            })
            .buffered(self.concurrency.max(1))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .map(|(index, result)| match result {
                Ok(pred) => EvalItem {
                    index,
                    score: metric(&devset[index], &pred).clamp(0.0, 1.0),
                    prediction: Some(pred),
                    error: None,
                },
                Err(e) => EvalItem { index, score: 0.0, prediction: None, error: Some(e.to_string()) },
            })
            .collect();
        let average =
            if items.is_empty() { 0.0 } else { items.iter().map(|i| i.score).sum::<f64>() / items.len() as f64 };
        EvalReport { average, items }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn averages_scores_and_counts_errors_as_zero() {
        let devset: Vec<Example> =
            (0..4).map(|i| Example::new(json!({"q": i, "a": i * 2}).as_object().unwrap().clone(), &["q"])).collect();
        let report = Evaluate { concurrency: 2 }
            .run(
                &devset,
                |ex| async move {
                    let q = ex.get("q").and_then(|v| v.as_i64()).unwrap();
                    if q == 3 {
                        Err(std::io::Error::other("boom"))
                    } else {
                        Ok(json!({"a": if q == 1 { 99 } else { q * 2 }}).as_object().unwrap().clone())
                    }
                },
                |ex, pred| if ex.get("a") == pred.get("a") { 1.0 } else { 0.0 },
            )
            .await;
        assert_eq!(report.items.iter().map(|i| i.score).collect::<Vec<_>>(), vec![1.0, 0.0, 1.0, 0.0]);
        assert_eq!(report.average, 0.5);
        assert_eq!(report.items[3].error.as_deref(), Some("boom"));
    }
}

//! What a run cost, printed next to its time: the accepted calculations × the per-call cost of
//! the path the run drove, from the `cost` crate's queue profiles (`latency cost -a queue`).
//! An http target is API Gateway → SQS → Lambda (`queue-sqs-lambda-burst`: a run posts its
//! calculations at once, so the event source takes full batches; every item scales with them); an amqp target is RabbitMQ + workers on Kubernetes, whose per-call cost is the
//! ledger's writes and whose cluster is a monthly cost whatever the run (EKS and kOps shown).

use serde::Serialize;

use super::target::Kind;

/// The Lambda path's profile.
pub(super) const LAMBDA_PATH: &str = "queue-sqs-lambda-burst";
/// The worker path's profiles: the same per-call items, two clusters.
pub(super) const WORKER_PATHS: [&str; 2] = ["queue-rabbitmq-eks", "queue-rabbitmq-kops"];
/// The book used when the run's region has none.
const DEFAULT_REGION: &str = "eu-west-2";

/// The run's cost, as printed and in `--json` (`cost`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunCost {
    /// The profile the per-call cost comes from.
    pub profile: String,
    /// The price book, e.g. `eu-west-2-2026-11`.
    pub prices: String,
    /// Calculations priced: the accepted ones.
    pub calculations: usize,
    /// Dollars per 1,000 calculations (the profile's per-call items).
    pub per_1000_usd: f64,
    /// `calculations × per_1000_usd / 1,000`.
    pub usd: f64,
    /// The worker path's clusters, a month whatever the run: (profile, dollars).
    pub cluster_per_month_usd: Vec<(String, f64)>,
}

impl RunCost {
    /// Prices `calculations` accepted calculations on the path `kind` drove, with the built-in
    /// book of `region` (the run's AWS region) or of eu-west-2 when there is none for it.
    pub(super) fn of_run(
        kind: Kind,
        calculations: usize,
        region: Option<&str>,
    ) -> Result<RunCost, cost::CostError> {
        let book = match region.map(|region| cost::book(region, None)) {
            Some(Ok(book)) => book,
            _ => cost::book(DEFAULT_REGION, None)?,
        };
        let price = |id: &str| cost::estimate(cost::profile(id)?, book, &cost::Params::default());
        let (main, clusters) = match kind {
            Kind::Http => (price(LAMBDA_PATH)?, Vec::new()),
            Kind::Amqp => {
                let estimates = WORKER_PATHS.iter().map(|id| price(id)).collect::<Result<Vec<_>, _>>()?;
                let clusters = estimates.iter().map(|e| (e.profile.clone(), e.fixed_per_month)).collect();
                (estimates[0].clone(), clusters)
            }
        };
        let per_1000_usd = main.per_million_calls / 1000.0;
        Ok(RunCost {
            profile: main.profile,
            prices: main.book,
            calculations,
            per_1000_usd,
            usd: per_1000_usd * calculations as f64 / 1000.0,
            cluster_per_month_usd: clusters,
        })
    }

    /// One line for the summary: `cost             $0.0071 for 1000 calculations (…)`.
    pub fn render(&self) -> String {
        let clusters: Vec<String> = self
            .cluster_per_month_usd
            .iter()
            .map(|(id, usd)| format!("{} a month ({id})", cost::money(*usd)))
            .collect();
        let what = if clusters.is_empty() {
            format!("{}: {} per 1,000", self.profile, cost::money(self.per_1000_usd))
        } else {
            format!(
                "the ledger's writes: {} per 1,000; the cluster adds {}",
                cost::money(self.per_1000_usd),
                clusters.join(" or ")
            )
        };
        format!(
            "cost             {} for {} calculations ({what}; prices {})\n",
            cost::money(self.usd),
            self.calculations,
            self.prices
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lambda_run_costs_its_calculations_times_the_profiles_per_call_cost() -> Result<(), cost::CostError> {
        let run = RunCost::of_run(Kind::Http, 1000, Some("eu-west-2"))?;
        let estimate = cost::estimate(
            cost::profile(LAMBDA_PATH)?,
            cost::book("eu-west-2", None)?,
            &cost::Params::default(),
        )?;
        assert_eq!(run.profile, LAMBDA_PATH);
        assert!((run.usd - estimate.per_million_calls / 1000.0).abs() < 1e-12);
        assert!(run.cluster_per_month_usd.is_empty());
        let twice = RunCost::of_run(Kind::Http, 2000, Some("eu-west-2"))?;
        assert!((twice.usd - 2.0 * run.usd).abs() < 1e-12);
        let line = run.render();
        assert!(
            line.starts_with(&format!("cost             {} for 1000 calculations", cost::money(run.usd))),
            "{line}"
        );
        assert!(line.contains("queue-sqs-lambda-burst") && line.contains("eu-west-2-2026-11"), "{line}");
        Ok(())
    }

    #[test]
    fn a_worker_run_costs_the_ledger_writes_and_names_both_clusters_monthly_cost()
    -> Result<(), cost::CostError> {
        let run = RunCost::of_run(Kind::Amqp, 10_000, Some("eu-west-2"))?;
        // 4 WRU a calculation at London's $0.70675 per million.
        assert!((run.usd - 10_000.0 * 4.0 * 0.70675 / 1e6).abs() < 1e-12, "{run:?}");
        let ids: Vec<&str> = run.cluster_per_month_usd.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, WORKER_PATHS);
        assert!(
            run.cluster_per_month_usd[1].1 < run.cluster_per_month_usd[0].1,
            "kOps is the cheaper: {run:?}"
        );
        let line = run.render();
        assert!(
            line.contains("a month (queue-rabbitmq-eks) or") && line.contains("(queue-rabbitmq-kops)"),
            "{line}"
        );
        Ok(())
    }

    #[test]
    fn a_region_without_prices_falls_back_to_london() -> Result<(), cost::CostError> {
        assert_eq!(RunCost::of_run(Kind::Http, 1, Some("xx-nowhere-1"))?.prices, "eu-west-2-2026-11");
        assert_eq!(RunCost::of_run(Kind::Http, 1, None)?.prices, "eu-west-2-2026-11");
        assert_eq!(RunCost::of_run(Kind::Http, 1, Some("us-east-1"))?.prices, "us-east-1-2026-11");
        Ok(())
    }
}

//! Running cases: connect, probe capabilities, run each selected case with a timeout, always
//! run its cleanup, and report `N passed, N failed, N skipped`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::caps::{Capabilities, Req};
use super::config::Config;
use super::ctx::{Ctx, RunShared};
use crate::csi_client::CsiClient;

/// A case body: gets its own context, returns Err to fail.
pub type CaseFn = fn(Ctx) -> Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// One named check with its preconditions.
#[derive(Clone)]
pub struct Case {
    /// `area/rpc/what`, e.g. `controller/create_volume/missing_name_invalid`.
    pub name: &'static str,
    /// All must hold, or the case is skipped.
    pub requires: Vec<Req>,
    pub run: CaseFn,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").field("name", &self.name).finish()
    }
}

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed(String),
    Skipped(String),
}

#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: &'static str,
    pub outcome: Outcome,
    pub took: Duration,
}

/// The results of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub results: Vec<CaseResult>,
}

impl Report {
    fn count(&self, f: fn(&Outcome) -> bool) -> usize {
        self.results.iter().filter(|r| f(&r.outcome)).count()
    }
    pub fn passed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Passed))
    }
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed(_)))
    }
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skipped(_)))
    }
    /// `N passed, N failed, N skipped`
    pub fn summary(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed(),
            self.failed(),
            self.skipped()
        )
    }
    pub fn outcome(&self, name: &str) -> Option<&Outcome> {
        self.results
            .iter()
            .find(|r| r.name == name)
            .map(|r| &r.outcome)
    }
    /// Names of the failed cases.
    pub fn failures(&self) -> Vec<&'static str> {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
            .map(|r| r.name)
            .collect()
    }
}

/// Connect to the endpoint(s), probe, run every case selected by the filter, print per-case
/// lines and the summary line.
pub async fn run(config: Config) -> Result<Report> {
    let ctl = CsiClient::connect(&config.controller_endpoint)
        .await
        .with_context(|| format!("connect {}", config.controller_endpoint.display()))?;
    let nod = if config.node_endpoint == config.controller_endpoint {
        ctl.clone()
    } else {
        CsiClient::connect(&config.node_endpoint)
            .await
            .with_context(|| format!("connect {}", config.node_endpoint.display()))?
    };
    let caps = Capabilities::probe(&mut ctl.clone(), &mut nod.clone()).await;
    let verbose = config.verbose;
    if verbose {
        println!(
            "csi-conformance: access={} size={} controller caps={:?} node caps={:?}",
            config.access_type,
            config.volume_size,
            caps.controller.len(),
            caps.node.len()
        );
    }
    let cases: Vec<Case> = super::all_cases()
        .into_iter()
        .filter(|c| config.filter.as_deref().is_none_or(|f| c.name.contains(f)))
        .collect();
    let shared = Arc::new(RunShared::new(config, caps));
    let mut report = Report::default();
    for case in cases {
        let start = Instant::now();
        let outcome = run_case(&case, &shared, &ctl, &nod).await;
        let took = start.elapsed();
        if verbose {
            match &outcome {
                Outcome::Passed => println!("PASS {} ({took:.2?})", case.name),
                Outcome::Failed(why) => println!("FAIL {} ({took:.2?}): {why}", case.name),
                Outcome::Skipped(why) => println!("SKIP {}: {why}", case.name),
            }
        }
        report.results.push(CaseResult {
            name: case.name,
            outcome,
            took,
        });
    }
    if verbose {
        for r in &report.results {
            if let Outcome::Failed(_) = r.outcome {
                println!("failed: {}", r.name);
            }
        }
        println!("{}", report.summary());
    }
    Ok(report)
}

async fn run_case(
    case: &Case,
    shared: &Arc<RunShared>,
    ctl: &CsiClient,
    nod: &CsiClient,
) -> Outcome {
    let access = shared.config.access_type;
    if let Some(why) = case
        .requires
        .iter()
        .find_map(|r| shared.caps.unmet(*r, access))
    {
        return Outcome::Skipped(why);
    }
    let ctx = Ctx::new(shared.clone(), ctl.clone(), nod.clone());
    let body = tokio::time::timeout(shared.config.case_timeout, (case.run)(ctx.clone())).await;
    let result = match body {
        Ok(r) => r,
        Err(_) => Err(anyhow::anyhow!(
            "timed out after {:?}",
            shared.config.case_timeout
        )),
    };
    let problems = ctx.run_cleanup().await;
    match (result, problems.is_empty()) {
        (Ok(()), true) => Outcome::Passed,
        (Ok(()), false) => Outcome::Failed(format!("cleanup: {}", problems.join("; "))),
        (Err(e), true) => Outcome::Failed(format!("{e:#}")),
        (Err(e), false) => Outcome::Failed(format!("{e:#} (cleanup: {})", problems.join("; "))),
    }
}

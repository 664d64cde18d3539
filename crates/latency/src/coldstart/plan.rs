//! What to run: `latency cold-start`'s arguments validated into a [`Plan`] — the bootstrap, the
//! event (a file, or the built-in API Gateway `GET /hits`), the environment Lambda would give the
//! function, the memory size and the CPU share.

use std::path::PathBuf;
use std::time::Duration;

use axum::body::Bytes;
use serde_json::Value;

use super::Args;
use super::cgroup::{CpuLimit, MB_PER_VCPU, Quota};
use crate::error::Error;

/// A real API Gateway HTTP API (v2) event (the `lambda_http` crate's test data, kept with the
/// function's tests); [`default_event`] turns it into `GET /hits`.
const HTTP_API_EVENT: &str =
    include_str!("../../../../functions/hits/tests/fixtures/apigw_v2_proxy_request.json");
/// How the built-in event is named in output.
pub(crate) const DEFAULT_EVENT_SOURCE: &str = "API Gateway HTTP API (v2) GET /hits";
pub(super) const FUNCTION_NAME: &str = "hits-cold-start";
pub(super) const ACCOUNT_ID: &str = "123456789012";
/// Environment passed through to the bootstrap: exact names, then prefixes.
const PASS_THROUGH: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_LOG_FORMAT",
    "AWS_LAMBDA_LOG_LEVEL",
    "RUST_LOG",
];
const PASS_THROUGH_PREFIXES: &[&str] = &["HITS_", "AWS_ENDPOINT_URL"];

/// The validated arguments: what every run needs.
pub(crate) struct Plan {
    pub(crate) bootstrap: PathBuf,
    pub(super) event: Bytes,
    pub(super) event_source: String,
    pub(super) env: Vec<(String, String)>,
    pub(super) region: String,
    pub(crate) memory_mb: u32,
    pub(crate) cpu_percent: Option<f64>,
    pub(super) cpu_quota: Option<Quota>,
    pub(super) quota_after_init: bool,
    pub(super) timeout: Duration,
}

impl Plan {
    pub(crate) fn new(args: &Args) -> Result<Plan, Error> {
        let bootstrap = &args.bootstrap;
        let meta =
            std::fs::metadata(bootstrap).map_err(Error::io(format!("bootstrap {}", bootstrap.display())))?;
        if !meta.is_file() {
            return Err(Error::Invalid(format!("bootstrap {} is not a file", bootstrap.display())));
        }
        let (event, event_source) = match &args.event {
            Some(path) => {
                let text = std::fs::read(path).map_err(Error::io(format!("event {}", path.display())))?;
                serde_json::from_slice::<Value>(&text)
                    .map_err(|e| Error::Invalid(format!("event {} is not JSON: {e}", path.display())))?;
                (Bytes::from(text), path.display().to_string())
            }
            None => (default_event()?, DEFAULT_EVENT_SOURCE.to_owned()),
        };
        let mut env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| {
                PASS_THROUGH.contains(&k.as_str()) || PASS_THROUGH_PREFIXES.iter().any(|p| k.starts_with(p))
            })
            .collect();
        for pair in &args.env {
            match pair.split_once('=') {
                Some((key, value)) if !key.is_empty() => {
                    env.retain(|(k, _)| k != key);
                    env.push((key.to_owned(), value.to_owned()));
                }
                _ => return Err(Error::Invalid(format!("--env {pair:?}: expected KEY=VALUE"))),
            }
        }
        let region = env
            .iter()
            .find(|(k, _)| k == "AWS_REGION")
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
            .unwrap_or_else(|| "eu-west-2".to_owned());
        let cpu_percent = args.cpu_quota.map(|q| match q {
            Quota::Percent(p) => p,
            Quota::Lambda => f64::from(args.memory_mb) / MB_PER_VCPU * 100.0,
        });
        Ok(Plan {
            bootstrap: bootstrap.clone(),
            event,
            event_source,
            env,
            region,
            memory_mb: args.memory_mb,
            cpu_percent,
            cpu_quota: args.cpu_quota,
            quota_after_init: args.quota_after_init,
            timeout: Duration::from_secs(args.timeout_secs),
        })
    }

    /// `HITS_STORE` as the bootstrap will see it (unset: the hits default, memory).
    pub(crate) fn store(&self) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == "HITS_STORE")
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "memory (HITS_STORE unset)".to_owned())
    }

    pub(crate) fn endpoint(&self) -> Option<&str> {
        self.env.iter().find(|(k, _)| k == "AWS_ENDPOINT_URL").map(|(_, v)| v.as_str())
    }

    /// One header line about what is measured, for the table's reader.
    pub(super) fn describe(&self, cpu: Option<&CpuLimit>) -> String {
        let cpu = match cpu {
            Some(limit) => format!(
                "{}; applied {}",
                limit.describe(self.cpu_quota, self.memory_mb),
                if self.quota_after_init {
                    "from the first invocation (init at full CPU)"
                } else {
                    "from exec"
                }
            ),
            None => "CPU: not limited (all of this machine's CPUs)".to_owned(),
        };
        let endpoint = self.endpoint().map(|e| format!(" via {e}")).unwrap_or_default();
        format!(
            "cold start of {}\n  event: {}\n  store: {}{endpoint}\n  memory size {} MB (reported, not enforced); {cpu}",
            self.bootstrap.display(),
            self.event_source,
            self.store(),
            self.memory_mb
        )
    }

    /// The environment Lambda gives a `provided.al2023` function, then the pass-through.
    pub(super) fn lambda_env(&self, api: &str, run: u32) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("AWS_LAMBDA_RUNTIME_API", api.to_owned()),
            ("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME.to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", self.memory_mb.to_string()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{FUNCTION_NAME}")),
            ("AWS_LAMBDA_LOG_STREAM_NAME", format!("cold-start/[$LATEST]run-{run}")),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
            ("AWS_REGION", self.region.clone()),
            ("AWS_DEFAULT_REGION", self.region.clone()),
            ("_HANDLER", "bootstrap".to_owned()),
            ("LAMBDA_TASK_ROOT", "/var/task".to_owned()),
            ("LAMBDA_RUNTIME_DIR", "/var/runtime".to_owned()),
            ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin".to_owned()),
            (
                "LD_LIBRARY_PATH",
                "/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib".to_owned(),
            ),
            ("LANG", "en_US.UTF-8".to_owned()),
            ("TZ", ":UTC".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (key, value) in &self.env {
            env.retain(|(k, _)| k != key);
            env.push((key.clone(), value.clone()));
        }
        env
    }
}

/// The HTTP API fixture as `GET /hits` on the `$default` stage (the fixture is a POST).
pub(crate) fn default_event() -> Result<Bytes, Error> {
    let mut event: Value = serde_json::from_str(HTTP_API_EVENT)
        .map_err(|e| Error::Invalid(format!("the built-in event fixture is not JSON: {e}")))?;
    let Some(object) = event.as_object_mut() else {
        return Err(Error::Invalid("the built-in event fixture is not a JSON object".into()));
    };
    object.remove("body");
    object.insert("rawPath".into(), "/hits".into());
    object.insert("rawQueryString".into(), "".into());
    object.remove("queryStringParameters");
    if let Some(http) = event.pointer_mut("/requestContext/http").and_then(Value::as_object_mut) {
        http.insert("method".into(), "GET".into());
        http.insert("path".into(), "/hits".into());
    }
    serde_json::to_vec(&event)
        .map(Bytes::from)
        .map_err(|e| Error::Invalid(format!("cannot write the built-in event: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_event_is_an_http_api_get_of_hits() {
        let event: Value = serde_json::from_slice(&default_event().expect("built-in event")).expect("JSON");
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["rawPath"], "/hits");
        assert_eq!(event["requestContext"]["http"]["method"], "GET");
        assert!(event.get("body").is_none());
    }
}

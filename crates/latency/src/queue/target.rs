//! The target of a run: an HTTP API (API Gateway → SQS) or a RabbitMQ broker, told apart by the
//! URL's scheme, and the URL as printed, without its password (`queue::amqp::redact`).

use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Http,
    Amqp,
}

impl Kind {
    pub(super) fn of(target: &str) -> Result<Kind, Error> {
        if is_http(target) {
            Ok(Kind::Http)
        } else if target.starts_with("amqp://") || target.starts_with("amqps://") {
            Ok(Kind::Amqp)
        } else {
            Err(Error::Invalid(format!(
                "target {:?} is neither http(s)://…/calc nor amqp://…",
                redact(target)
            )))
        }
    }
}

pub(super) fn is_http(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

pub(super) use queue::amqp::redact;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_amqp_uris_are_not_printed() {
        assert_eq!(redact("amqp://guest:guest@127.0.0.1:5673/%2f"), "amqp://guest:***@127.0.0.1:5673/%2f");
        assert_eq!(redact("amqp://127.0.0.1:5673/%2f"), "amqp://127.0.0.1:5673/%2f");
        assert_eq!(redact("https://x.example/v1/calc?a=b@c:d"), "https://x.example/v1/calc?a=b@c:d");
    }
}

//! The target of a run: an HTTP API (API Gateway → SQS) or a RabbitMQ broker, told apart by the
//! URL's scheme, and the URL as printed, without its password.

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

/// `amqp://user:secret@host/…` → `amqp://user:***@host/…`, for messages.
pub(super) fn redact(uri: &str) -> String {
    let Some(start) = uri.find("://").map(|i| i + 3) else { return uri.to_owned() };
    let authority_end = uri[start..].find('/').map_or(uri.len(), |i| start + i);
    let authority = &uri[start..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => {
            format!("{}{}:***{}", &uri[..start], &authority[..colon], &uri[start + at..])
        }
        _ => uri.to_owned(),
    }
}

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

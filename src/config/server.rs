//! Where the service keeps its data and listens, how it is reached, and the owner's token.

use secrecy::SecretString;

use crate::config::{ConfigError, Source, parsed, problem};

/// A database URL; `Debug` hides any password it carries.
#[derive(Clone)]
pub struct DatabaseUrl(pub String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = match (self.0.find("://"), self.0.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                format!("{}://[redacted]@{}", &self.0[..scheme_end], &self.0[at + 1..])
            }
            _ => self.0.clone(),
        };
        f.write_str(&shown)
    }
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://holdfast.db";

/// The database URL alone (for `holdfast migrate`, which needs nothing else).
pub fn database_url(src: &impl Source) -> Result<DatabaseUrl, ConfigError> {
    let url = src.get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
    let known = ["sqlite:", "postgres://", "postgresql://"];
    if !known.iter().any(|k| url.starts_with(k)) {
        return Err(problem("DATABASE_URL", "must start with sqlite:// or postgres://"));
    }
    Ok(DatabaseUrl(url))
}

/// `HOLDFAST_BIND`, or `0.0.0.0:$PORT`, or `127.0.0.1:8080`.
pub fn bind(src: &impl Source) -> Result<String, ConfigError> {
    if let Some(bind) = src.get("HOLDFAST_BIND") {
        bind.parse::<std::net::SocketAddr>().map_err(|_| problem("HOLDFAST_BIND", "must be host:port, e.g. 127.0.0.1:8080"))?;
        return Ok(bind);
    }
    match parsed::<u16>(src, "PORT")? {
        Some(port) => Ok(format!("0.0.0.0:{port}")),
        None => Ok("127.0.0.1:8080".into()),
    }
}

/// `HOLDFAST_PUBLIC_URL`, or `http://` and the bind address: the base of every link.
pub(crate) fn public_url(src: &impl Source, bind: &str) -> Result<String, ConfigError> {
    let url = src.get("HOLDFAST_PUBLIC_URL").unwrap_or_else(|| format!("http://{bind}"));
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(problem("HOLDFAST_PUBLIC_URL", "must start with http:// or https://"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// `HOLDFAST_OWNER_TOKEN`: the owner API's bearer token, if the owner API is on.
pub(crate) fn owner_token(src: &impl Source) -> Result<Option<SecretString>, ConfigError> {
    const VAR: &str = "HOLDFAST_OWNER_TOKEN";
    match src.get(VAR) {
        Some(t) if t.trim().len() < 16 => Err(problem(VAR, "must be at least 16 characters (e.g. `openssl rand -hex 32`)")),
        Some(t) => Ok(Some(SecretString::from(t.trim().to_owned()))),
        None => Ok(None),
    }
}

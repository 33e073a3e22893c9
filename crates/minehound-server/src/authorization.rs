//! Registry authorization Harbor hands over with a scan request: kept in
//! memory only, applied to the pull of that one job.

use minehound::{Credentials, RegistryOptions};

/// Registry authorization handed over with a Harbor scan request.
#[derive(Clone)]
pub enum Authorization {
    /// `Basic base64(user:password)`, still encoded.
    Basic(String),
    /// `Bearer TOKEN`.
    Bearer(String),
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Authorization::Basic(_) => "Basic <hidden>",
            Authorization::Bearer(_) => "Bearer <hidden>",
        })
    }
}

impl Authorization {
    /// Reads an `Authorization` header value: a scheme (`Basic` or `Bearer`,
    /// any case), one space, and a non-empty rest. Basic credentials are
    /// decoded when the scan starts; undecodable ones fail the scan.
    pub fn parse(value: &str) -> Result<Authorization, String> {
        let usage = "registry.authorization must be \"Basic …\" or \"Bearer …\"";
        let (scheme, rest) = value.split_once(' ').ok_or(usage)?;
        if rest.is_empty() {
            return Err(usage.into());
        }
        if scheme.eq_ignore_ascii_case("basic") {
            Ok(Authorization::Basic(rest.to_string()))
        } else if scheme.eq_ignore_ascii_case("bearer") {
            Ok(Authorization::Bearer(rest.to_string()))
        } else {
            Err(usage.into())
        }
    }

    /// What the registry client takes: credentials or a token.
    pub(crate) fn apply(self, registry: &mut RegistryOptions) -> Result<(), String> {
        match self {
            Authorization::Bearer(token) => registry.bearer_token = Some(token),
            Authorization::Basic(encoded) => {
                use base64::Engine;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or("registry.authorization: the Basic credentials are not base64 of UTF-8 text")?;
                let (username, password) = decoded
                    .split_once(':')
                    .ok_or("registry.authorization: the Basic credentials lack a ':'")?;
                registry.credentials = Some(Credentials {
                    username: username.to_string(),
                    password: password.to_string(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_headers_parse() {
        let mut registry = RegistryOptions::default();
        Authorization::parse("Basic dXNlcjpwYTpzcw==")
            .unwrap()
            .apply(&mut registry)
            .unwrap();
        let c = registry.credentials.unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("user", "pa:ss")
        );
        let mut registry = RegistryOptions::default();
        assert!(
            Authorization::parse("basic !!!")
                .unwrap()
                .apply(&mut registry)
                .is_err()
        );
        assert!(matches!(
            Authorization::parse("Bearer abc.def").unwrap(),
            Authorization::Bearer(t) if t == "abc.def"
        ));
        for bad in ["", "Basic", "Digest x", "Bearer "] {
            assert!(Authorization::parse(bad).is_err(), "{bad}");
        }
    }
}

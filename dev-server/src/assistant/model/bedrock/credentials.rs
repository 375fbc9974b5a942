//! The standard AWS credential chain, in the SDKs' order: the environment
//! (`AWS_ACCESS_KEY_ID`, …), the shared credentials file's profile (`AWS_PROFILE`), a web
//! identity token (EKS IRSA: `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, through STS), the
//! container endpoint (ECS task roles, EKS Pod Identity) and the instance metadata service
//! (IMDSv2). Temporary credentials are cached and fetched again five minutes before expiry.

use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::sync::Mutex;

use super::super::Failure;
use super::super::http::{Client, Url};

/// A key pair and, for temporary credentials, the session token and expiry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `AKIA…` / `ASIA…`.
    pub access_key_id: String,
    /// The secret.
    pub secret_access_key: String,
    /// For temporary credentials.
    pub session_token: Option<String>,
    /// When they stop working.
    pub expires: Option<SystemTime>,
}

impl std::fmt::Debug for Credentials {
    /// Never the secret or the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    fn fresh(&self) -> bool {
        self.expires
            .is_none_or(|at| at > SystemTime::now() + Duration::from_secs(300))
    }

    fn from_json(v: &Value) -> Option<Self> {
        Some(Self {
            access_key_id: v["AccessKeyId"].as_str()?.to_owned(),
            secret_access_key: v["SecretAccessKey"].as_str()?.to_owned(),
            session_token: v["Token"]
                .as_str()
                .or(v["SessionToken"].as_str())
                .map(str::to_owned),
            expires: v["Expiration"]
                .as_str()
                .and_then(|e| humantime::parse_rfc3339_weak(e.trim_end_matches('Z')).ok()),
        })
    }
}

/// What the chain reads from the process's environment (a map in tests).
pub type Env = dyn Fn(&str) -> Option<String> + Send + Sync;

/// The chain, with its cache.
pub struct Chain {
    env: Box<Env>,
    client: Client,
    cached: Mutex<Option<Credentials>>,
    /// The metadata service's address (tests point it elsewhere).
    imds: String,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").finish_non_exhaustive()
    }
}

fn unavailable(why: impl Into<String>) -> Failure {
    Failure::Unavailable(format!("AWS credentials: {}", why.into()))
}

impl Chain {
    /// The chain over `env`.
    pub fn new(env: Box<Env>, client: Client) -> Self {
        let imds = env("AWS_EC2_METADATA_SERVICE_ENDPOINT")
            .unwrap_or_else(|| "http://169.254.169.254".to_owned());
        Self {
            env,
            client,
            cached: Mutex::new(None),
            imds,
        }
    }

    /// Credentials from the first source that has them.
    pub async fn get(&self) -> Result<Credentials, Failure> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| c.fresh()) {
            return Ok(c.clone());
        }
        let creds = self.resolve().await?;
        *cached = Some(creds.clone());
        Ok(creds)
    }

    async fn resolve(&self) -> Result<Credentials, Failure> {
        let env = &self.env;
        if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            return Ok(Credentials {
                access_key_id: id,
                secret_access_key: secret,
                session_token: env("AWS_SESSION_TOKEN"),
                expires: None,
            });
        }
        if let Some(c) = self.profile() {
            return Ok(c);
        }
        if let (Some(file), Some(role)) = (env("AWS_WEB_IDENTITY_TOKEN_FILE"), env("AWS_ROLE_ARN"))
        {
            return self.web_identity(&file, &role).await;
        }
        if let Some(uri) = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
            return self.container(&format!("http://169.254.170.2{uri}")).await;
        }
        if let Some(uri) = env("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
            return self.container(&uri).await;
        }
        if env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Err(unavailable(
                "none found (environment, profile, web identity, container; IMDS disabled)",
            ));
        }
        self.imds().await
    }

    /// `[profile]` of the shared credentials file (static keys).
    fn profile(&self) -> Option<Credentials> {
        let env = &self.env;
        let path = env("AWS_SHARED_CREDENTIALS_FILE")
            .or_else(|| env("HOME").map(|h| format!("{h}/.aws/credentials")))?;
        let text = std::fs::read_to_string(path).ok()?;
        let want = env("AWS_PROFILE").unwrap_or_else(|| "default".to_owned());
        parse_profile(&text, &want)
    }

    async fn get_json(&self, url: &str, headers: &[(&str, String)]) -> Result<Value, Failure> {
        let (text, status) = self.fetch("GET", url, headers).await?;
        if status != 200 {
            return Err(unavailable(format!("{url} answered {status}")));
        }
        serde_json::from_str(&text).map_err(|e| unavailable(format!("{url}: {e}")))
    }

    async fn fetch(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
    ) -> Result<(String, u16), Failure> {
        let parsed = Url::parse(url.split('?').next().unwrap_or(url)).map_err(unavailable)?;
        let path = match url.split_once('?') {
            Some((_, q)) => format!(
                "{}?{q}",
                if parsed.path.is_empty() {
                    "/"
                } else {
                    &parsed.path
                }
            ),
            None if parsed.path.is_empty() => "/".to_owned(),
            None => parsed.path.clone(),
        };
        let response = tokio::time::timeout(
            Duration::from_secs(5),
            self.client
                .send(method, &parsed, &path, headers, Vec::new()),
        )
        .await
        .map_err(|_| unavailable(format!("{url} did not answer")))??;
        let status = response.status;
        Ok((response.text(64 * 1024).await, status))
    }

    async fn container(&self, url: &str) -> Result<Credentials, Failure> {
        let mut headers = Vec::new();
        let token = (self.env)("AWS_CONTAINER_AUTHORIZATION_TOKEN").or_else(|| {
            (self.env)("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
                .and_then(|f| std::fs::read_to_string(f).ok())
                .map(|t| t.trim().to_owned())
        });
        if let Some(token) = token {
            headers.push(("authorization", token));
        }
        let json = self.get_json(url, &headers).await?;
        Credentials::from_json(&json)
            .ok_or_else(|| unavailable("the container endpoint's answer has no keys"))
    }

    async fn imds(&self) -> Result<Credentials, Failure> {
        let base = &self.imds;
        let (token, status) = self
            .fetch(
                "PUT",
                &format!("{base}/latest/api/token"),
                &[("x-aws-ec2-metadata-token-ttl-seconds", "21600".to_owned())],
            )
            .await?;
        if status != 200 {
            return Err(unavailable(format!("IMDS token: {status}")));
        }
        let auth = [("x-aws-ec2-metadata-token", token.trim().to_owned())];
        let (role, status) = self
            .fetch(
                "GET",
                &format!("{base}/latest/meta-data/iam/security-credentials/"),
                &auth,
            )
            .await?;
        let role = role.lines().next().unwrap_or("").trim().to_owned();
        if status != 200 || role.is_empty() {
            return Err(unavailable("the instance has no role"));
        }
        let json = self
            .get_json(
                &format!("{base}/latest/meta-data/iam/security-credentials/{role}"),
                &auth,
            )
            .await?;
        Credentials::from_json(&json).ok_or_else(|| unavailable("IMDS's answer has no keys"))
    }

    async fn web_identity(&self, file: &str, role: &str) -> Result<Credentials, Failure> {
        let token =
            std::fs::read_to_string(file).map_err(|e| unavailable(format!("{file}: {e}")))?;
        let region = (self.env)("AWS_REGION").or_else(|| (self.env)("AWS_DEFAULT_REGION"));
        let host = match region {
            Some(r) => format!("https://sts.{r}.amazonaws.com"),
            None => "https://sts.amazonaws.com".to_owned(),
        };
        let session = (self.env)("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| "farm-chat".to_owned());
        let url = format!(
            "{host}/?Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName={}&WebIdentityToken={}",
            super::sigv4::uri_encode(role),
            super::sigv4::uri_encode(&session),
            super::sigv4::uri_encode(token.trim())
        );
        let (xml, status) = self.fetch("GET", &url, &[]).await?;
        if status != 200 {
            return Err(unavailable(format!("STS answered {status}")));
        }
        let tag = |name: &str| {
            let open = format!("<{name}>");
            let start = xml.find(&open)? + open.len();
            let end = xml[start..].find(&format!("</{name}>"))? + start;
            Some(xml[start..end].to_owned())
        };
        Ok(Credentials {
            access_key_id: tag("AccessKeyId").ok_or_else(|| unavailable("STS: no AccessKeyId"))?,
            secret_access_key: tag("SecretAccessKey")
                .ok_or_else(|| unavailable("STS: no SecretAccessKey"))?,
            session_token: tag("SessionToken"),
            expires: tag("Expiration")
                .and_then(|e| humantime::parse_rfc3339_weak(e.trim_end_matches('Z')).ok()),
        })
    }
}

/// The static keys of `[profile]` in a shared credentials file.
pub fn parse_profile(text: &str, profile: &str) -> Option<Credentials> {
    let mut in_section = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line.trim_matches(['[', ']']).trim() == profile;
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_owned();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some(Credentials {
        access_key_id: id?,
        secret_access_key: secret?,
        session_token: token,
        expires: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_read_their_own_section() {
        let text = "[default]\naws_access_key_id = AKIA1\naws_secret_access_key = s1\n\n[farm]\naws_access_key_id=AKIA2\naws_secret_access_key=s2\naws_session_token=t2\n";
        assert_eq!(
            parse_profile(text, "default").unwrap().access_key_id,
            "AKIA1"
        );
        let farm = parse_profile(text, "farm").unwrap();
        assert_eq!(
            (
                farm.secret_access_key.as_str(),
                farm.session_token.as_deref()
            ),
            ("s2", Some("t2"))
        );
        assert!(parse_profile(text, "none").is_none());
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let c = Credentials {
            access_key_id: "AKIA".into(),
            secret_access_key: "very-secret".into(),
            session_token: Some("token-secret".into()),
            expires: None,
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("very-secret") && !shown.contains("token-secret"),
            "{shown}"
        );
    }

    #[test]
    fn container_answers_parse_with_their_expiry() {
        let v: Value = serde_json::from_str(r#"{"AccessKeyId":"ASIA1","SecretAccessKey":"s","Token":"t","Expiration":"2030-01-01T00:00:00Z"}"#).unwrap();
        let c = Credentials::from_json(&v).unwrap();
        assert_eq!(c.session_token.as_deref(), Some("t"));
        assert!(c.fresh());
    }
}

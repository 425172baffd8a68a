//! cert-manager and AWS Private CA: Issuer, ClusterIssuer, AWSPCAIssuer,
//! AWSPCAClusterIssuer, Certificate.

use super::*;

impl Loader {
    /// cert-manager issuers (cert-manager.io/v1 `IssuerSpec`: exactly one of `acme`, `ca`,
    /// `vault`, `selfSigned`, `venafi`) and AWS Private CA issuers (aws-privateca-issuer:
    /// `arn`, `region`, optional `secretRef` with static keys).
    pub(super) fn load_cert_issuer(
        &mut self,
        group: &str,
        kind: &str,
        value: &Value,
        ctx: &Ctx,
    ) -> Result<(), LoadError> {
        let cluster = kind.contains("Cluster");
        let object: Decoded<serde_json::Map<String, serde_json::Value>> =
            decode(value, ctx, !cluster)?;
        let meta = object.meta;
        let spec = required_spec(object.spec, ctx, &format!("an {kind}"))?;
        let text = |key: &str| -> Result<Option<String>, LoadError> {
            match spec.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ctx.field(format!("spec.{key}"), "must be a string")),
            }
        };
        let (issuer_type, arn, region, static_credentials) = if group == "awspca.cert-manager.io" {
            (
                "awspca".to_string(),
                text("arn")?,
                text("region")?,
                spec.get("secretRef").is_some_and(|v| !v.is_null()),
            )
        } else {
            const TYPES: [&str; 5] = ["acme", "ca", "vault", "selfSigned", "venafi"];
            let present: Vec<&str> = TYPES
                .iter()
                .copied()
                .filter(|t| spec.get(*t).is_some_and(|v| !v.is_null()))
                .collect();
            match present.as_slice() {
                [one] => (one.to_string(), None, None, false),
                [] => {
                    return Err(ctx.field(
                        "spec",
                        "needs one issuer type: acme, ca, vault, selfSigned or venafi",
                    ))
                }
                many => {
                    return Err(ctx.field(
                        "spec",
                        format!("sets more than one issuer type: {}", many.join(", ")),
                    ))
                }
            }
        };
        self.cert_issuers.push(CertIssuer {
            group: group.to_string(),
            kind: kind.to_string(),
            namespace: if cluster {
                None
            } else {
                Some(namespace_of(&meta))
            },
            name: meta.name.unwrap_or_default(),
            issuer_type,
            arn,
            region,
            static_credentials,
            annotations: meta.annotations.unwrap_or_default(),
            origin: ctx.origin.clone(),
        });
        Ok(())
    }

    pub(super) fn load_certificate(&mut self, value: &Value, ctx: &Ctx) -> Result<(), LoadError> {
        let object: Decoded<CertificateSpecLite> = decode(value, ctx, true)?;
        let meta = object.meta;
        let spec = required_spec(object.spec, ctx, "a Certificate")?;
        let issuer_ref = spec
            .issuer_ref
            .ok_or_else(|| ctx.field("spec.issuerRef", "missing: a Certificate needs an issuer"))?;
        let issuer_name = issuer_ref
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ctx.field("spec.issuerRef.name", "missing"))?;
        let duration_seconds = spec
            .duration
            .as_deref()
            .map(|d| go_duration_seconds(d).map_err(|m| ctx.field("spec.duration", m)))
            .transpose()?;
        self.certificates.push(Certificate {
            namespace: namespace_of(&meta),
            name: meta.name.unwrap_or_default(),
            issuer_ref: (
                issuer_ref
                    .group
                    .filter(|g| !g.is_empty())
                    .unwrap_or_else(|| "cert-manager.io".into()),
                issuer_ref
                    .kind
                    .filter(|k| !k.is_empty())
                    .unwrap_or_else(|| "Issuer".into()),
                issuer_name,
            ),
            is_ca: spec.is_ca.unwrap_or(false),
            duration_seconds,
            annotations: meta.annotations.unwrap_or_default(),
            origin: ctx.origin.clone(),
        });
        Ok(())
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct CertificateSpecLite {
    issuer_ref: Option<IssuerRefLite>,
    #[serde(rename = "isCA")]
    is_ca: Option<bool>,
    duration: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct IssuerRefLite {
    name: Option<String>,
    kind: Option<String>,
    group: Option<String>,
}

/// A Go `time.ParseDuration` string as cert-manager reads `spec.duration` (`2160h`,
/// `8760h0m0s`, `90m`, `1h30m`), in whole seconds; units ns, us, µs, ms, s, m, h.
pub(super) fn go_duration_seconds(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a duration like 2160h or 1h30m (units h, m, s, ms)");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if number_len == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        nanos += number * scale;
        rest = &rest[unit_len..];
    }
    Ok((nanos / 1e9) as u64)
}

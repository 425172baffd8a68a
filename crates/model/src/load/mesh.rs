//! Service meshes: Istio PeerAuthentication (Linkerd is read from pod annotations).

use super::*;

impl Loader {
    /// Istio PeerAuthentication (istio.io reference, "PeerAuthentication": `mtls.mode` is
    /// UNSET, DISABLE, PERMISSIVE or STRICT; `portLevelMtls` keys are port numbers and need a
    /// workload selector).
    pub(super) fn load_peer_authentication(
        &mut self,
        value: &Value,
        ctx: &Ctx,
    ) -> Result<(), LoadError> {
        let object: Decoded<PeerAuthenticationSpecLite> = decode(value, ctx, true)?;
        let meta = object.meta;
        let spec = object.spec.unwrap_or_default();
        let mode = |m: &Option<MtlsLite>, field: &str| -> Result<MtlsMode, LoadError> {
            match m.as_ref().and_then(|m| m.mode.as_deref()) {
                None | Some("UNSET") => Ok(MtlsMode::Unset),
                Some("DISABLE") => Ok(MtlsMode::Disable),
                Some("PERMISSIVE") => Ok(MtlsMode::Permissive),
                Some("STRICT") => Ok(MtlsMode::Strict),
                Some(other) => Err(ctx.field(
                    field,
                    format!(
                        "unknown mode {other:?} (expected UNSET, DISABLE, PERMISSIVE or STRICT)"
                    ),
                )),
            }
        };
        let selector = spec
            .selector
            .map(|s| s.match_labels.unwrap_or_default().into_iter().collect());
        let mut port_modes = Vec::new();
        for (port, mtls) in spec.port_level_mtls.unwrap_or_default() {
            let field = format!("spec.portLevelMtls[{port:?}]");
            let number: u16 = port
                .parse()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| ctx.field(&field, "a port number 1-65535"))?;
            port_modes.push((number, mode(&Some(mtls), &format!("{field}.mode"))?));
        }
        if !port_modes.is_empty() && selector.is_none() {
            return Err(ctx.field(
                "spec.portLevelMtls",
                "needs spec.selector: Istio applies port-level mTLS only to selected workloads",
            ));
        }
        self.peer_authentications.push(PeerAuthentication {
            namespace: namespace_of(&meta),
            name: meta.name.unwrap_or_default(),
            selector,
            mode: mode(&spec.mtls, "spec.mtls.mode")?,
            port_modes,
            annotations: meta.annotations.unwrap_or_default(),
            origin: ctx.origin.clone(),
        });
        Ok(())
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct PeerAuthenticationSpecLite {
    selector: Option<MatchLabelsLite>,
    mtls: Option<MtlsLite>,
    port_level_mtls: Option<BTreeMap<String, MtlsLite>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MatchLabelsLite {
    match_labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
pub(super) struct MtlsLite {
    mode: Option<String>,
}

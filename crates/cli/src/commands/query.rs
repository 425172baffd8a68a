//! `netfence query`: one connection explained, to a pod, an address or through a Service.

use super::*;

#[derive(Clone, Copy, ValueEnum)]
pub enum QueryFormat {
    Text,
    Json,
}

/// The arguments of `netfence query`.
#[derive(Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub inputs: Inputs,
    /// Source: `namespace/pod`, `pod` (namespace `default`), `namespace/workload`, or an IP.
    #[arg(long)]
    pub from: String,
    /// Destination, in the same forms as --from, or a Service: `namespace/svc/name`,
    /// `svc/name` (namespace `default`) or a cluster IP of a loaded Service.
    #[arg(long)]
    pub to: String,
    /// `PROTO/PORT`, e.g. TCP/80 or UDP/53.
    #[arg(long)]
    pub port: ProbePort,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = QueryFormat::Text)]
    pub output: QueryFormat,
}

/// `netfence query` (its help text is on [`crate::Command`]).
pub fn query(args: QueryArgs) -> Result<u8, Failure> {
    let QueryArgs {
        inputs,
        from,
        to,
        port,
        output,
    } = args;
    let mut out = std::io::stdout().lock();
    let engine = inputs::load(&inputs)?;
    let src = inputs::endpoint(&engine, &from, "--from")?;
    let dst = match inputs::target(&engine, &to, "--to")? {
        inputs::Target::Endpoint(dst) => dst,
        inputs::Target::Service(index) => {
            let service = &engine.inventory().services[index];
            let answer = engine.explain_via_service(src, service, port.protocol, port.port);
            match output {
                QueryFormat::Text => {
                    render::service_query_text(&mut out, &engine, src, service, port, &answer)
                }
                QueryFormat::Json => {
                    render::service_query_json(&mut out, &engine, src, service, port, &answer)
                }
            }
            .map_err(io_failure)?;
            return Ok(if answer.allowed() { 0 } else { 1 });
        }
    };
    let verdict = engine.explain(src, dst, port.protocol, port.port);
    match output {
        QueryFormat::Text => render::query_text(&mut out, &engine, src, dst, port, &verdict),
        QueryFormat::Json => render::query_json(&mut out, &engine, src, dst, port, &verdict),
    }
    .map_err(io_failure)?;
    Ok(if verdict.allowed { 0 } else { 1 })
}

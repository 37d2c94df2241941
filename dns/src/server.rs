//! The DNS server (hickory-server): names in the cluster domain, and the
//! reverse names of the tenant's addresses, are answered from the
//! [`DnsView`], authoritatively; every other query is forwarded to the
//! resolvers of the process's own `/etc/resolv.conf` (so host names and the
//! internet still resolve, as CoreDNS's `forward . /etc/resolv.conf`).
//!
//! Every query is bounded: one question per message (else `FORMERR`), a
//! view lookup that touches only the Service asked for, and forwarded
//! lookups under the resolver's timeout; malformed packets are dropped or
//! answered `FORMERR` by hickory and never stop the server.

use crate::view::{DnsView, Lookup, QueryType, RecordData};
use hickory_resolver::TokioResolver;
use hickory_resolver::net::{DnsError, NetError};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, PTR, SRV, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};

/// TTL of the records answered from the view, in seconds (CoreDNS's
/// kubernetes plugin default).
pub const TTL: u32 = 5;

/// How long a TCP client may stay idle between queries.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);

/// How many forwarded queries may wait on the upstream at once; more are
/// answered REFUSED, so a flood of names to forward cannot pile up tasks
/// waiting on the upstream's timeout.
pub const MAX_FORWARDS_IN_FLIGHT: usize = 256;

/// Answers from the view, forwards the rest (module docs).
pub struct Handler {
    view: Arc<RwLock<DnsView>>,
    upstream: TokioResolver,
    forwards: tokio::sync::Semaphore,
}

impl Handler {
    /// A handler over `view`, forwarding through `upstream`.
    pub fn new(view: Arc<RwLock<DnsView>>, upstream: TokioResolver) -> Self {
        Self {
            view,
            upstream,
            forwards: tokio::sync::Semaphore::new(MAX_FORWARDS_IN_FLIGHT),
        }
    }

    fn local(&self, qname: &LowerName, qtype: RecordType) -> Lookup {
        let qt = match qtype {
            RecordType::A => QueryType::A,
            RecordType::AAAA => QueryType::Aaaa,
            RecordType::SRV => QueryType::Srv,
            RecordType::PTR => QueryType::Ptr,
            RecordType::CNAME => QueryType::Cname,
            RecordType::TXT => QueryType::Txt,
            RecordType::ANY => QueryType::Any,
            _ => QueryType::Other,
        };
        let view = self.view.read().unwrap_or_else(|e| e.into_inner());
        view.lookup(&qname.to_string(), qt)
    }

    /// Forwards one question: the upstream's answers and response code
    /// (its SOA in the authority section for a negative answer).
    async fn forward(
        &self,
        name: Name,
        qtype: RecordType,
    ) -> (ResponseCode, Vec<Record>, Vec<Record>) {
        let Ok(_permit) = self.forwards.try_acquire() else {
            return (ResponseCode::Refused, Vec::new(), Vec::new());
        };
        match self.upstream.lookup(name, qtype).await {
            Ok(lookup) => (ResponseCode::NoError, lookup.answers().to_vec(), Vec::new()),
            Err(NetError::Dns(DnsError::NoRecordsFound(none))) => {
                let soa = none
                    .soa
                    .map(|soa| vec![soa.into_record_of_rdata()])
                    .unwrap_or_default();
                (none.response_code, Vec::new(), soa)
            }
            Err(NetError::Dns(DnsError::ResponseCode(code))) => (code, Vec::new(), Vec::new()),
            Err(e) => {
                tracing::debug!(error = %e, "forwarded DNS query failed");
                (ResponseCode::ServFail, Vec::new(), Vec::new())
            }
        }
    }
}

fn absolute(name: &str) -> Option<Name> {
    Name::from_ascii(format!("{name}.")).ok()
}

/// A view record as a DNS record owned by `owner`.
fn record(owner: &Name, data: &RecordData) -> Option<Record> {
    let rdata = match data {
        RecordData::A(ip) => RData::A(A(*ip)),
        RecordData::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
        RecordData::Cname(t) => RData::CNAME(CNAME(absolute(t)?)),
        RecordData::Ptr(t) => RData::PTR(PTR(absolute(t)?)),
        RecordData::Srv {
            priority,
            weight,
            port,
            target,
        } => RData::SRV(SRV::new(*priority, *weight, *port, absolute(target)?)),
        RecordData::Txt(t) => RData::TXT(TXT::new(vec![t.clone()])),
    };
    Some(Record::from_rdata(owner.clone(), TTL, rdata))
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        // Echo EDNS, else UDP answers are cut at 512 bytes.
        let edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().max(512)).set_version(0);
            e
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(e) = &edns {
            builder.edns(e);
        }
        let query = match request.request_info() {
            Ok(info)
                if request.metadata.message_type == MessageType::Query
                    && request.metadata.op_code == OpCode::Query =>
            {
                info.query
            }
            Ok(_) => {
                return send_error(request, builder, ResponseCode::NotImp, &mut response).await;
            }
            Err(_) => {
                return send_error(request, builder, ResponseCode::FormErr, &mut response).await;
            }
        };
        let (qname, qtype) = (query.name(), query.query_type());
        let owner = Name::from(qname.clone());
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        let (answers, authorities) = match self.local(qname, qtype) {
            Lookup::Outside => {
                let (code, answers, authorities) = self.forward(owner, qtype).await;
                metadata.response_code = code;
                (answers, authorities)
            }
            Lookup::NotReady => {
                metadata.response_code = ResponseCode::ServFail;
                (Vec::new(), Vec::new())
            }
            Lookup::NxDomain => {
                metadata.authoritative = true;
                metadata.response_code = ResponseCode::NXDomain;
                (Vec::new(), Vec::new())
            }
            Lookup::NoData => {
                metadata.authoritative = true;
                (Vec::new(), Vec::new())
            }
            Lookup::Found(data) => {
                metadata.authoritative = true;
                let mut answers: Vec<Record> =
                    data.iter().filter_map(|d| record(&owner, d)).collect();
                // An ExternalName's target is resolved too, as CoreDNS
                // does, so stub resolvers that do not chase a CNAME still
                // get addresses: from the view when it names a tenant
                // Service (one step, no chains), else upstream.
                if matches!(qtype, RecordType::A | RecordType::AAAA)
                    && let [RecordData::Cname(target)] = data.as_slice()
                    && let Some(target) = absolute(target)
                {
                    let lower = LowerName::from(target.clone());
                    match self.local(&lower, qtype) {
                        Lookup::Found(more) => answers.extend(
                            more.iter()
                                .filter(|d| !matches!(d, RecordData::Cname(_)))
                                .filter_map(|d| record(&target, d)),
                        ),
                        Lookup::Outside => {
                            let (_, more, _) = self.forward(target, qtype).await;
                            answers.extend(more);
                        }
                        _ => {}
                    }
                }
                (answers, Vec::new())
            }
        };
        let message = builder.build(metadata, answers.iter(), authorities.iter(), [], []);
        match response.send_response(message).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "sending a DNS response failed");
                servfail(request)
            }
        }
    }
}

async fn send_error<R: ResponseHandler>(
    request: &Request,
    builder: MessageResponseBuilder<'_>,
    code: ResponseCode,
    response: &mut R,
) -> ResponseInfo {
    let message = builder.error_msg(&request.metadata, code);
    response
        .send_response(message)
        .await
        .unwrap_or_else(|_| servfail(request))
}

fn servfail(request: &Request) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

/// The resolver of this process's `/etc/resolv.conf`, not answering from
/// `/etc/hosts` (a DNS server forwards; the hosts file is the stub
/// resolver's business).
///
/// # Errors
/// An unreadable or empty resolv.conf.
pub fn system_resolver() -> anyhow::Result<TokioResolver> {
    let mut builder = TokioResolver::builder_tokio()?;
    builder.options_mut().use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
    Ok(builder.build()?)
}

/// A resolver asking only `servers` (UDP, then TCP for truncated answers),
/// waiting at most `timeout` per attempt: an explicit upstream instead of
/// resolv.conf's.
///
/// # Errors
/// The resolver cannot be built.
pub fn resolver_for(servers: &[SocketAddr], timeout: Duration) -> anyhow::Result<TokioResolver> {
    use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    let name_servers = servers
        .iter()
        .map(|s| {
            let (mut udp, mut tcp) = (ConnectionConfig::udp(), ConnectionConfig::tcp());
            udp.port = s.port();
            tcp.port = s.port();
            NameServerConfig::new(s.ip(), true, vec![udp, tcp])
        })
        .collect();
    let mut builder = TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(name_servers),
        TokioRuntimeProvider::default(),
    );
    builder.options_mut().timeout = timeout;
    builder.options_mut().attempts = 1;
    builder.options_mut().use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
    Ok(builder.build()?)
}

/// A running DNS server; dropping it stops it.
pub struct DnsServer {
    /// Where it listens (UDP and TCP on the same address).
    pub addr: SocketAddr,
    _server: Server<Handler>,
}

/// Serves `view` on UDP and TCP at `listen` (port 0 picks a free port,
/// the same for both), forwarding through `upstream`.
///
/// # Errors
/// The address is taken or not bindable.
pub async fn serve(
    listen: SocketAddr,
    view: Arc<RwLock<DnsView>>,
    upstream: TokioResolver,
) -> anyhow::Result<DnsServer> {
    let (udp, addr) = if listen.port() == 0 {
        // Find a port free for both protocols.
        let mut tries = 0;
        loop {
            let udp = UdpSocket::bind(listen).await?;
            let addr = udp.local_addr()?;
            match TcpListener::bind(addr).await {
                Ok(tcp) => {
                    let mut server = Server::new(Handler::new(view, upstream));
                    server.register_socket(udp);
                    server.register_listener(tcp, TCP_TIMEOUT, 32);
                    return Ok(DnsServer {
                        addr,
                        _server: server,
                    });
                }
                Err(e) if tries > 20 => return Err(e.into()),
                Err(_) => tries += 1,
            }
        }
    } else {
        let udp = UdpSocket::bind(listen).await?;
        let addr = udp.local_addr()?;
        (udp, addr)
    };
    let tcp = TcpListener::bind(addr).await?;
    let mut server = Server::new(Handler::new(view, upstream));
    server.register_socket(udp);
    server.register_listener(tcp, TCP_TIMEOUT, 32);
    Ok(DnsServer {
        addr,
        _server: server,
    })
}

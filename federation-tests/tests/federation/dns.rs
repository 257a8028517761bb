//! A DNS authority for `hearth.test.` on 127.0.0.1:<random UDP port> (hickory-server), whose
//! records tests add as nodes start.
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{LowerName, Name, RData, Record};
use hickory_server::authority::{Catalog, ZoneType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryAuthority;
use hickory_server::ServerFuture;

pub struct Dns {
    pub addr: SocketAddr,
    authority: Arc<InMemoryAuthority>,
    queries: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

/// The catalog, counting the queries it answers.
struct Counting {
    catalog: Catalog,
    queries: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl RequestHandler for Counting {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        response: R,
    ) -> ResponseInfo {
        self.queries.fetch_add(1, Ordering::Relaxed);
        self.catalog.handle_request(request, response).await
    }
}

impl Dns {
    pub async fn start() -> Self {
        let origin = Name::from_str("hearth.test.").unwrap();
        let authority = Arc::new(InMemoryAuthority::empty(
            origin.clone(),
            ZoneType::Primary,
            false,
        ));
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::from(&origin), Box::new(authority.clone()));
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let queries = Arc::new(AtomicU64::new(0));
        let mut server = ServerFuture::new(Counting {
            catalog,
            queries: queries.clone(),
        });
        server.register_socket(socket);
        let task = tokio::spawn(async move {
            let _ = server.block_until_done().await;
        });
        Self {
            addr,
            authority,
            queries,
            task,
        }
    }

    /// Queries answered so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// `<name>.hearth.test` → 127.0.0.1.
    pub async fn add_a(&self, name: &str) {
        let host = Name::from_str(&format!("{name}.hearth.test.")).unwrap();
        self.authority
            .upsert(
                Record::from_rdata(host, 1, RData::A(A(Ipv4Addr::LOCALHOST))),
                0,
            )
            .await;
    }

    /// A record plus `_hearth._tcp.<name>.hearth.test` SRV → `<name>.hearth.test:<port>`.
    pub async fn add_node(&self, name: &str, port: u16) {
        self.add_a(name).await;
        let host = Name::from_str(&format!("{name}.hearth.test.")).unwrap();
        let srv = Name::from_str(&format!("_hearth._tcp.{name}.hearth.test.")).unwrap();
        self.authority
            .upsert(
                Record::from_rdata(srv, 1, RData::SRV(SRV::new(0, 0, port, host))),
                0,
            )
            .await;
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

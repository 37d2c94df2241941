//! stub
use kube::Client;
/// stub
pub async fn run(_client: Client) {}

//! A bare actix-web server answering `/asyncwait` with the same JSON as the
//! service, without its middleware, metrics or logging: the reference that
//! `scripts/bench-http.sh` measures the service's overhead against.
//!
//! `cargo run --release -p upload-http --example bare -- PORT [WORKERS]`

use actix_web::{App, HttpResponse, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(8001);
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(2);
    HttpServer::new(|| {
        App::new().route(
            "/asyncwait",
            web::get()
                .to(|| async { HttpResponse::Ok().json(serde_json::json!({ "duration": 0.0 })) }),
        )
    })
    .workers(workers)
    .bind(("127.0.0.1", port))?
    .run()
    .await
}

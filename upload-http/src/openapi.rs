//! The OpenAPI 3.1 document of the whole API, generated from the handlers'
//! `#[utoipa::path]` annotations and the types they answer with. Served at
//! `/openapi.json`; a copy is committed as `upload-http/openapi.json`, and a
//! test fails when they differ, so every change to the API shows in review.

use std::sync::LazyLock;

use actix_web::{HttpResponse, web};
use utoipa::openapi::path::{HttpMethod, Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    HeaderBuilder, ObjectBuilder, RefOr, Required, Response, ResponseBuilder, Type,
};
use utoipa::{Modify, OpenApi};

use crate::routes;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "fastupload",
        description = "Streaming file uploads (multipart, raw and tus 1.0), downloads, signed \
            links, and the endpoints of the original FastAPI benchmark. Every error is JSON \
            `{\"error\": {\"code\", \"message\"}}`; each response's description names its codes. \
            With no tokens configured (`auth.mode = \"open\"`) no operation needs one.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        routes::files::upload_multipart,
        routes::files::list,
        routes::files::download,
        routes::files::upload_raw,
        routes::files::delete,
        routes::links::create,
        routes::tus::options,
        routes::tus::create,
        routes::tus::head,
        routes::tus::patch,
        routes::tus::delete,
        routes::tus::overridden,
        routes::bench::wait,
        routes::bench::asyncwait,
        routes::bench::fib,
        routes::ops::healthz,
        routes::ops::readyz,
        routes::ops::metrics,
        routes::ui::root,
        routes::ui::page,
        routes::ui::file,
        serve,
    ),
    modifiers(&Conventions),
    tags(
        (name = "files", description = "Upload, list, download and delete files."),
        (name = "uploads", description = "Resumable uploads: tus 1.0 with creation, \
            creation-with-upload, creation-defer-length, termination, checksum, expiration \
            and concatenation. Absent when `uploads.resumable = false`."),
        (name = "benchmark", description = "The original benchmark's endpoints."),
        (name = "operations", description = "Health, readiness, metrics, this document."),
        (name = "page", description = "The upload page for browsers."),
    ),
)]
struct ApiDoc;

/// The form of a multipart upload (only described: the handler streams parts as they come).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct MultipartUpload {
    /// Every part with a filename is a file (any field name).
    file: Vec<Binary>,
    /// A lifetime for the files after it: `1h`, `30m`, `7d` or seconds.
    expires_after: Option<String>,
}

/// A file's bytes, any bytes.
pub(crate) struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        let schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("application/octet-stream");
        RefOr::T(schema.into())
    }
}

impl utoipa::ToSchema for Binary {}

/// What holds for every operation, added here once instead of on each.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token from `auth.tokens`; its scopes are listed."))
                    .build(),
            ),
        );
        // `POST /` is `POST /files`, for the original benchmark's client; tus
        // answers `OPTIONS` on an upload's URL as on `/uploads/`.
        copy(doc, "/files", HttpMethod::Post, "/", "upload_multipart_root");
        copy(doc, "/uploads/", HttpMethod::Options, "/uploads/{id}", "tus_options_upload");
        for item in doc.paths.paths.values_mut() {
            let item_head = item.head.as_mut().map(|op| (op, "_head"));
            let others = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete]
                .into_iter()
                .chain([&mut item.options, &mut item.patch])
                .filter_map(|op| op.as_mut().map(|op| (op, "")));
            for (op, suffix) in item_head.into_iter().chain(others) {
                conventions(op, suffix);
            }
        }
    }
}

/// The errors any operation may answer, the `X-Process-Time` of every
/// answer, and a distinct id for the `HEAD` twin of a `GET`.
fn conventions(op: &mut Operation, suffix: &str) {
    if let Some(id) = op.operation_id.as_mut() {
        id.push_str(suffix);
    }
    // Every operation with a security list names the `token` scheme in it.
    let needs_token = op.security.as_ref().is_some_and(|all| !all.is_empty());
    let responses = &mut op.responses.responses;
    if needs_token {
        responses.entry("401".into()).or_insert_with(|| {
            error("`unauthorized`: no token, or one that is not valid.", &["WWW-Authenticate"])
        });
        responses.entry("403".into()).or_insert_with(|| {
            error("`forbidden`: the token lacks the scope, or the file is another's.", &[])
        });
    }
    responses
        .entry("500".into())
        .or_insert_with(|| error("`internal_error`: the service's log says more.", &[]));
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else { continue };
        let seconds = HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::String))
            .description(Some("Seconds the service spent on the request."))
            .build();
        response.headers.insert("X-Process-Time".into(), seconds);
        if status == "503" {
            let retry = HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("Seconds to wait before retrying."))
                .build();
            response.headers.insert("Retry-After".into(), retry);
        }
    }
}

/// An error response: the JSON error body, with these headers.
fn error(description: &str, headers: &[&str]) -> RefOr<Response> {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        utoipa::openapi::ContentBuilder::new()
            .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("Error"))))
            .build(),
    );
    for name in headers {
        let header =
            HeaderBuilder::new().schema(ObjectBuilder::new().schema_type(Type::String)).build();
        response = response.header(*name, header);
    }
    RefOr::T(response.build())
}

/// Serves `from`'s `method` operation at `to` as well, under `id`.
fn copy(doc: &mut utoipa::openapi::OpenApi, from: &str, method: HttpMethod, to: &str, id: &str) {
    let Some(mut op) = doc.paths.get_path_operation(from, method.clone()).cloned() else {
        return;
    };
    op.operation_id = Some(id.into());
    // Every template variable of the new path is declared.
    for name in to.split('{').skip(1).filter_map(|rest| rest.split_once('}')).map(|(n, _)| n) {
        let declared = op.parameters.iter().flatten().any(|p| p.name == name);
        if !declared {
            let param = ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)));
            op.parameters.get_or_insert_with(Vec::new).push(param.build());
        }
    }
    doc.paths.add_path_operation(to, vec![method], op);
}

/// The document, built once: whole, and without the tus routes for a
/// service that does not serve them (`uploads.resumable = false`).
static DOCUMENTS: LazyLock<[String; 2]> = LazyLock::new(|| {
    let whole = ApiDoc::openapi();
    let mut one_shot = whole.clone();
    one_shot.paths.paths.retain(|path, _| !path.starts_with("/uploads"));
    one_shot.tags.iter_mut().for_each(|tags| tags.retain(|t| t.name != "uploads"));
    [whole, one_shot].map(|doc| doc.to_pretty_json().expect("the document serialises") + "\n")
});

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses(
    (status = 200, description = "The OpenAPI 3.1 document of this API.", content_type = "application/json"),
))]
pub(crate) async fn serve(state: web::Data<AppState>) -> HttpResponse {
    let doc = &DOCUMENTS[usize::from(!state.settings.uploads.resumable)];
    HttpResponse::Ok().content_type("application/json").body(doc.as_str())
}

//! The OpenAPI 3.1 document of the HTTP API, served at `/api/v1/openapi.json`.
//!
//! It is generated from the code: every route is registered together with its description
//! (`utoipa::path` on the handler, `utoipa_axum::routes!` in the router), the wire types derive
//! their schemas, and the agent protocol's messages carry the same JSON Schemas the node
//! validates them with. What every route shares is added here, from facts of each operation:
//! the bearer token (all but `/healthz`), and the error answers a request can meet before its
//! handler runs (authentication, role, rate limit, timeout, body and parameter parsing).

use std::sync::LazyLock;

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::api::Caller;
use crate::auth::Role;
use crate::error::ApiError;

/// The document (built once).
pub fn document() -> &'static Value {
    static DOCUMENT: LazyLock<Value> = LazyLock::new(build);
    &DOCUMENT
}

#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "system",
    summary = "This API's OpenAPI 3.1 document.",
    responses((status = 200, description = "the document", body = Object)),
)]
pub(crate) async fn openapi_json(caller: Caller) -> Result<Response, ApiError> {
    caller.require(Role::Viewer, "read the API description")?;
    Ok(Json(document()).into_response())
}

const ERROR_BODY: &str = "#/components/schemas/ErrorBody";

fn build() -> Value {
    let mut doc =
        serde_json::to_value(crate::api::routes().into_openapi()).expect("the document serialises");
    doc["info"] = json!({
        "title": "Dream.OS node API",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "Tasks, agents, workspaces, code search, tokens and the audit log. \
            Every route but /healthz takes `Authorization: Bearer <token>`; the least role \
            each route needs is in docs/security.md. Errors are `{code, message, details}`.",
        "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
    });
    let components = doc["components"].as_object_mut().expect("components");
    components.insert(
        "securitySchemes".into(),
        json!({ "bearer": { "type": "http", "scheme": "bearer" } }),
    );
    let schemas = components
        .entry("schemas")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .expect("schemas");
    for (name, text) in crate::protocol::MESSAGE_SCHEMAS {
        let mut schema: Value = serde_json::from_str(text).expect("protocol schemas are JSON");
        let schema_map = schema.as_object_mut().expect("a schema object");
        schema_map.remove("$schema");
        schema_map.remove("$id");
        // A message's own definitions become components beside it, so that references
        // resolve from the document's root.
        let defs = schema_map.remove("$defs").and_then(|d| d.as_object().cloned());
        let prefix = format!("protocol.{name}");
        rebase_refs(&mut schema, &prefix);
        for (def, mut sub) in defs.unwrap_or_default() {
            rebase_refs(&mut sub, &prefix);
            schemas.insert(format!("{prefix}.{def}"), sub);
        }
        schemas.insert(prefix, schema);
    }
    let paths = doc["paths"].as_object_mut().expect("paths");
    for (path, item) in paths.iter_mut() {
        for (_, operation) in item.as_object_mut().expect("a path item").iter_mut() {
            complete_operation(path, operation);
            add_links(operation);
        }
    }
    doc
}

/// `#/$defs/x` inside a protocol message becomes `#/components/schemas/<prefix>.x`.
fn rebase_refs(schema: &mut Value, prefix: &str) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match (key.as_str(), value.as_str()) {
                    ("$ref", Some(r)) if r.starts_with("#/$defs/") => {
                        *value = json!(format!(
                            "#/components/schemas/{prefix}.{}",
                            &r["#/$defs/".len()..]
                        ));
                    }
                    _ => rebase_refs(value, prefix),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rebase_refs(v, prefix)),
        _ => {}
    }
}

/// What a created thing's answer lets a client do next: OpenAPI links from the creating
/// operation to the operations that take its id (clients and test generators follow them).
const LINKS: &[(&str, &str, &str, &str)] = &[
    // creating operation, operation it leads to, its parameter, where the value is
    ("submit", "show", "id", "$response.body#/task/id"),
    ("submit", "cancel", "id", "$response.body#/task/id"),
    ("submit", "retry", "id", "$response.body#/task/id"),
    ("create_token", "revoke_token", "id", "$response.body#/id"),
    ("add_workspace", "index_workspace", "name", "$response.body#/workspace/name"),
    ("add_workspace", "remove_workspace", "name", "$response.body#/workspace/name"),
    ("create_agent", "show_agent", "id", "$response.body#/id"),
];

fn add_links(operation: &mut Value) {
    let Some(id) = operation["operationId"].as_str().map(str::to_owned) else { return };
    for (_, target, parameter, value) in LINKS.iter().filter(|(from, ..)| *from == id) {
        let Some(created) = operation["responses"]["201"].as_object_mut() else { continue };
        let links = created.entry("links").or_insert_with(|| json!({}));
        links[*target] = json!({ "operationId": target, "parameters": { *parameter: value } });
    }
}

/// Adds the bearer token and the error answers every operation of its shape can give.
fn complete_operation(path: &str, operation: &mut Value) {
    let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
    let has_body = operation.get("requestBody").is_some();
    let mut errors: Vec<(u16, &str)> = vec![
        (
            429,
            "too many requests (per address, per token, or the submission quota); see Retry-After",
        ),
        (503, "the node is stopping, or the request took longer than the node allows"),
    ];
    if path != "/healthz" && path != "/readyz" {
        operation["security"] = json!([{ "bearer": [] }]);
        errors.push((401, "missing or invalid credentials (one answer for every reason, but an expired token is told so)"));
        errors.push((403, "the token's role or workspace scope does not allow this"));
    }
    if has_body {
        errors.push((
            400,
            "the body is not valid for this route (bad JSON, wrong shape, unknown field)",
        ));
        errors.push((413, "the body is larger than the node accepts"));
        errors.push((415, "the body is not `application/json`"));
    }
    if !parameters.is_empty() {
        errors.push((400, "a parameter does not parse or is out of range"));
    }
    if parameters.iter().any(|p| p["in"] == "path") {
        errors.push((404, "nothing with that name or id"));
    }
    let responses = operation["responses"].as_object_mut().expect("responses");
    for (status, description) in errors {
        let mut answer = json!({
            "description": description,
            "content": { "application/json": { "schema": { "$ref": ERROR_BODY } } },
        });
        if status == 429 {
            answer["headers"] = json!({
                "Retry-After": {
                    "description": "seconds to wait before trying again",
                    "required": true,
                    "schema": { "type": "integer", "minimum": 0 },
                },
            });
        }
        responses.entry(status.to_string()).or_insert(answer);
    }
}

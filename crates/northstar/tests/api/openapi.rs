//! The OpenAPI document: generated from the router's own route list,
//! served at `/api/openapi.json`, with interactive docs at `/api/docs`.

use axum::{
    body::Body,
    http::{Request, StatusCode},
};

use crate::support::TestApp;

#[tokio::test]
async fn the_document_lists_every_route_and_its_problems() {
    let app = TestApp::spawn().await;
    let response = app
        .send(
            Request::get("/api/openapi.json")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let doc = response.body;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let mut operations: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item") {
            operations.push(format!("{} {path}", method.to_uppercase()));
            assert!(
                operation["summary"].is_string() || operation["description"].is_string(),
                "{method} {path} is undocumented"
            );
            if path.starts_with("/api/v1/tenants") || path.starts_with("/api/v1/admin") {
                assert!(
                    operation["security"]
                        .as_array()
                        .is_some_and(|s| !s.is_empty()),
                    "{method} {path} declares no security requirement"
                );
            }
        }
    }
    operations.sort();
    insta::assert_snapshot!(operations.join("\n"));
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    assert!(schemas.contains_key("Problem") && schemas.contains_key("FieldError"));
    let security = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    assert!(security.contains_key("session") && security.contains_key("secret_key"));
}

#[tokio::test]
async fn interactive_docs_are_served_by_the_binary() {
    let app = TestApp::spawn().await;
    let page = app
        .send(
            Request::get("/api/docs/")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("swagger-ui"), "{}", page.text);
    let script = app
        .send(
            Request::get("/api/docs/swagger-ui-bundle.js")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(
        script.text.len() > 100_000,
        "the bundle is embedded, not fetched from a CDN"
    );
}

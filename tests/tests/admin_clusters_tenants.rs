//! The admin API manages clusters and tenants with Pulsar's paths, JSON shapes and statuses:
//! writes are persisted, duplicates are 409, unknown resources 404, junk input 400 (never
//! 5xx), a tenant with namespaces cannot be deleted, and `/admin/v2/openapi.json` lists
//! every operation.

mod admin_common;

use admin_common::start;

#[tokio::test]
async fn clusters_can_be_created_read_updated_and_deleted() {
    let a = start().await;
    let list = a.get("/admin/v2/clusters").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body.as_array().map(Vec::len), Some(1), "{}", list.body);

    let body = r#"{"serviceUrl":"http://east:8080","brokerServiceUrl":"pulsar://east:6650"}"#;
    assert_eq!(a.put("/admin/v2/clusters/east", body).await.status, 204);
    assert_eq!(a.put("/admin/v2/clusters/east", body).await.status, 409);
    let got = a.get("/admin/v2/clusters/east").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["serviceUrl"], "http://east:8080");
    assert_eq!(got.body["brokerServiceUrl"], "pulsar://east:6650");

    let upd = r#"{"serviceUrl":"http://east2:8080","brokerServiceUrl":"pulsar://east2:6650"}"#;
    assert_eq!(a.post("/admin/v2/clusters/east", upd).await.status, 204);
    let got = a.get("/admin/v2/clusters/east").await;
    assert_eq!(got.body["brokerServiceUrl"], "pulsar://east2:6650");
    let names = a.get("/admin/v2/clusters").await.body;
    assert!(names.as_array().expect("list").iter().any(|c| c == "east"));

    assert_eq!(a.delete("/admin/v2/clusters/east").await.status, 204);
    assert_eq!(a.get("/admin/v2/clusters/east").await.status, 404);
    assert_eq!(a.delete("/admin/v2/clusters/east").await.status, 404);
    assert_eq!(a.post("/admin/v2/clusters/east", upd).await.status, 404);
}

#[tokio::test]
async fn cluster_junk_input_is_rejected_with_a_reason() {
    let a = start().await;
    for body in ["", "{", "[1,2]", "{\"serviceUrl\": 5}", "{}"] {
        let r = a.put("/admin/v2/clusters/junk", body).await;
        assert_eq!(r.status, 400, "body {body:?}: {}", r.body);
        assert!(!r.reason().is_empty(), "no reason for {body:?}");
    }
    let r = a
        .put(
            "/admin/v2/clusters/bad%20name",
            r#"{"serviceUrl":"http://x"}"#,
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(a.get("/admin/v2/clusters/nope").await.status, 404);
}

#[tokio::test]
async fn tenants_crud_and_delete_refused_while_namespaces_exist() {
    let a = start().await;
    let cluster = a.get("/admin/v2/clusters").await.body[0]
        .as_str()
        .expect("cluster")
        .to_string();
    let info = format!(r#"{{"adminRoles":["admin"],"allowedClusters":["{cluster}"]}}"#);
    assert_eq!(a.put("/admin/v2/tenants/acme", &info).await.status, 204);
    assert_eq!(a.put("/admin/v2/tenants/acme", &info).await.status, 409);
    assert_eq!(a.put("/admin/v2/tenants/odd", "{broken").await.status, 400);
    assert_eq!(
        a.put("/admin/v2/namespaces/acme/odd", "{broken")
            .await
            .status,
        400
    );
    assert_eq!(a.get("/admin/v2/tenants/odd").await.status, 404);
    let r = a.put("/admin/v2/tenants/odd", r#"{"adminRoles": 5}"#).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = a.put("/admin/v2/namespaces/acme/odd", "[1, 2]").await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = a
        .put(
            "/admin/v2/namespaces/acme/odd",
            r#"{"message_ttl_in_seconds": "x"}"#,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let t = a.get("/admin/v2/tenants/acme").await;
    assert_eq!(t.body["adminRoles"][0], "admin");
    assert_eq!(t.body["allowedClusters"][0], cluster.as_str());
    let tenants = a.get("/admin/v2/tenants").await.body;
    assert!(tenants
        .as_array()
        .expect("list")
        .iter()
        .any(|x| x == "acme"));

    let upd = format!(r#"{{"adminRoles":["ops","dev"],"allowedClusters":["{cluster}"]}}"#);
    assert_eq!(a.post("/admin/v2/tenants/acme", &upd).await.status, 204);
    assert_eq!(
        a.get("/admin/v2/tenants/acme").await.body["adminRoles"][1],
        "dev"
    );
    let unknown_cluster = r#"{"adminRoles":[],"allowedClusters":["mars"]}"#;
    assert_eq!(
        a.post("/admin/v2/tenants/acme", unknown_cluster)
            .await
            .status,
        412
    );
    assert_eq!(a.post("/admin/v2/tenants/acme", "{oops").await.status, 400);
    assert_eq!(a.post("/admin/v2/tenants/ghost", &upd).await.status, 404);

    assert_eq!(a.put("/admin/v2/namespaces/acme/ns1", "").await.status, 204);
    let r = a.delete("/admin/v2/tenants/acme").await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(!r.reason().is_empty());
    assert_eq!(a.delete("/admin/v2/namespaces/acme/ns1").await.status, 204);
    assert_eq!(a.delete("/admin/v2/tenants/acme").await.status, 204);
    assert_eq!(a.get("/admin/v2/tenants/acme").await.status, 404);
    assert_eq!(a.delete("/admin/v2/tenants/acme").await.status, 404);
}

#[tokio::test]
async fn unknown_paths_are_json_404_and_openapi_lists_operations() {
    let a = start().await;
    let r = a.get("/admin/v2/no/such/thing").await;
    assert_eq!(r.status, 404);
    assert!(!r.reason().is_empty());
    let doc = a.get("/admin/v2/openapi.json").await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["openapi"], "3.0.3");
    let paths = doc.body["paths"].as_object().expect("paths");
    for p in [
        "/admin/v2/clusters/{cluster}",
        "/admin/v2/tenants/{tenant}",
        "/admin/v2/namespaces/{tenant}/{namespace}/retention",
        "/admin/v2/persistent/{tenant}/{namespace}/{topic}/internalStats",
        "/admin/v2/persistent/{tenant}/{namespace}/{topic}/subscription/{subscription}/skip_all",
        "/admin/v2/bookies/all",
    ] {
        assert!(paths.contains_key(p), "openapi lacks {p}");
    }
}

#[tokio::test]
async fn bookies_list_answers_with_a_list() {
    let a = start().await;
    let r = a.get("/admin/v2/bookies/all").await;
    assert_eq!(r.status, 200);
    assert!(r.body["bookies"].is_array(), "{}", r.body);
}
